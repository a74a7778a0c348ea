"""Splits in vendor files: found with their dates, and the price basis the models see (adjusted or raw)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from market_mlops.config import LabelSpec
from market_mlops.data.corporate_actions import match_ratio
from market_mlops.data.sources import RawFile, read_raw_file
from market_mlops.data.synthetic import GeneratorSpec, generate_bars
from market_mlops.dev.vendor_files import write_daily_csv

SPLIT_2_FOR_1 = pd.Timestamp("2021-06-01", tz="UTC")
REVERSE_1_FOR_10 = pd.Timestamp("2022-03-01", tz="UTC")


def _raw_series() -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """(adjusted bars as generated, the same bars as traded, Adj Close / Close): before the 2:1 split prices were twice
    today's and volumes half; before the 1:10 reverse split prices were a tenth and volumes ten times."""
    adjusted = generate_bars(GeneratorSpec(seed=11, benchmark=None), ["ACME"], "d1", dt.date(2020, 1, 2), dt.date(2022, 12, 30))
    day = adjusted["ts"].dt.normalize()
    price_factor = np.where(day < SPLIT_2_FOR_1, 2.0, 1.0) * np.where(day < REVERSE_1_FOR_10, 0.1, 1.0)
    raw = adjusted.copy()
    for col in ("open", "high", "low", "close"):
        raw[col] = adjusted[col] * price_factor
    raw["volume"] = (adjusted["volume"] / price_factor).round()
    return adjusted, raw, pd.Series(1 / price_factor)


def _read(path, basis: str) -> pd.DataFrame:
    return read_raw_file(RawFile(uri=str(path), name=path.name), timeframes={"d1": 1440}, price_basis=basis)


@pytest.mark.parametrize("with_adj_close", [True, False])
def test_splits_are_found_with_their_dates_and_adjusted_prices_have_no_jump(tmp_path, with_adj_close):
    adjusted, raw, factor = _raw_series()
    path = write_daily_csv(raw, tmp_path / "ACME.csv", factor if with_adj_close else None)
    if not with_adj_close:
        pd.read_csv(path).drop(columns=["Adj Close"]).to_csv(path, index=False)

    bars = _read(path, "adjusted")
    splits = bars[bars["split_ratio"] != 1.0]
    assert [(f"{t:%Y-%m-%d}", r) for t, r in zip(splits["ts"], splits["split_ratio"], strict=True)] == [
        ("2021-06-01", 2.0), ("2022-03-01", 0.1)]
    np.testing.assert_allclose(bars["close"], adjusted["close"], rtol=2e-3)  # vendor CSVs carry 4 decimals
    assert bars["abs_log_return"].max() < 0.2  # no fake crash or rally
    np.testing.assert_allclose(bars["volume"], adjusted["volume"], rtol=1e-3, atol=10)

    raw_basis = _read(path, "raw")
    np.testing.assert_allclose(raw_basis["close"], raw["close"], rtol=1e-4)
    assert raw_basis["abs_log_return"].max() < 0.2  # the split's move is not a market move
    assert (raw_basis["split_ratio"] != 1.0).sum() == 2


def test_the_adjusted_basis_keeps_features_and_labels_free_of_the_split(tmp_path):
    from market_mlops.model.features import build_features
    from market_mlops.model.labels import labels_and_usable_rows

    adjusted, raw, _ = _raw_series()
    path = write_daily_csv(raw, tmp_path / "ACME.csv")
    pd.read_csv(path).drop(columns=["Adj Close"]).to_csv(path, index=False)
    bars = _read(path, "adjusted")
    for frame in (bars, adjusted):
        frame["volume"] = frame["volume"].astype("float64")
    read_features = build_features(bars.drop(columns=[c for c in bars.columns if c not in adjusted.columns]), 252, None)
    true_features = build_features(adjusted, 252, None)
    around = (read_features["ts"] >= SPLIT_2_FOR_1 - pd.Timedelta(days=10)).to_numpy() & (
        read_features["ts"] <= REVERSE_1_FOR_10 + pd.Timedelta(days=10)).to_numpy()
    numeric = [c for c in read_features.select_dtypes("number").columns  # the CSV dates bars at midnight, not the open
               if not c.endswith(("_sin", "_cos"))]
    np.testing.assert_allclose(read_features.loc[around, numeric].to_numpy(float),
                               true_features.loc[around, numeric].to_numpy(float), rtol=0.05, atol=0.05)
    labels_read, _ = labels_and_usable_rows(read_features, bars["close"], list(numeric), 5, LabelSpec())
    labels_true, _ = labels_and_usable_rows(true_features, adjusted["close"], list(numeric), 5, LabelSpec())
    assert (labels_read[around] == labels_true[around]).mean() > 0.99


def test_a_crash_with_falling_volume_is_a_market_move_not_a_split():
    assert match_ratio(2.01, 0.04) == 2.0 and match_ratio(0.1, 0.04) == 0.1 and match_ratio(1.8, 0.04) is None
    from market_mlops.data.corporate_actions import find_splits

    ts = pd.Series(pd.date_range("2024-01-02", periods=12, freq="B", tz="UTC"))
    close = np.array([100.0] * 6 + [50.0] * 6)
    volume_falls = np.array([1e6] * 6 + [0.9e6] * 6)
    assert find_splits(ts, close, close, volume_falls) == []
    volume_doubles = np.array([1e6] * 6 + [2e6] * 6)
    assert [s.ratio for s in find_splits(ts, close, close, volume_doubles)] == [2.0]


def test_a_split_the_stored_history_took_out_is_found_against_it_and_nothing_else_is():
    """A follow-up file without Adj Close repeats a split the stored (adjusted) history took out: its closes stand at
    the ratio to the stored ones before the split and at 1 after it; a file on the stored basis shows none."""
    from market_mlops.data.corporate_actions import stored_splits, volumes_adjusted

    adjusted, raw, _factor = _raw_series()
    follow_up = raw[raw["ts"] >= pd.Timestamp("2021-03-01", tz="UTC")].reset_index(drop=True)
    found = stored_splits(follow_up, adjusted)
    assert [(s.ts.normalize(), s.ratio, s.evidence) for s in found] == [
        (SPLIT_2_FOR_1, 2.0, "known from the stored history"), (REVERSE_1_FOR_10, 0.1, "known from the stored history")]
    assert not volumes_adjusted(follow_up, adjusted, found)  # traded volumes: scaled with the prices
    assert volumes_adjusted(follow_up.assign(volume=adjusted.loc[raw["ts"] >= pd.Timestamp("2021-03-01", tz="UTC"),
                                                                 "volume"].to_numpy()), adjusted, found)
    assert stored_splits(adjusted, adjusted) == []
