from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from market_mlops.data import calendar
from market_mlops.data.synthetic import GeneratorSpec, generate_bars

SPEC = GeneratorSpec(seed=11, origin=dt.date(2018, 1, 2), benchmark="SPY")
SYMBOLS = ["SPY", "AAA", "BBB"]


@pytest.mark.parametrize("timeframe", ["m15", "h1", "h4", "d1"])
def test_ohlc_is_always_valid(timeframe):
    bars = generate_bars(SPEC, SYMBOLS, timeframe, dt.date(2023, 1, 3), dt.date(2023, 3, 31))
    assert len(bars) > 0
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars[["open", "high", "low", "close"]] > 0).all().all()
    assert (bars["volume"] >= 0).all()


def test_deterministic_by_seed_and_independent_of_the_range_asked():
    wide = generate_bars(SPEC, SYMBOLS, "d1", dt.date(2022, 1, 3), dt.date(2022, 12, 30))
    narrow = generate_bars(SPEC, SYMBOLS, "d1", dt.date(2022, 6, 1), dt.date(2022, 6, 30))
    again = generate_bars(SPEC, SYMBOLS, "d1", dt.date(2022, 6, 1), dt.date(2022, 6, 30))
    other_seed = generate_bars(GeneratorSpec(seed=12), SYMBOLS, "d1", dt.date(2022, 6, 1), dt.date(2022, 6, 30))
    assert narrow.equals(again)
    june = wide[(wide["ts"] >= narrow["ts"].min()) & (wide["ts"] <= narrow["ts"].max())].reset_index(drop=True)
    assert june.equals(narrow)  # a backfill of June gives the bars a run over the whole year gave
    assert not np.allclose(other_seed["close"], narrow["close"])


def test_only_trading_sessions_of_the_exchange_calendar():
    bars = generate_bars(SPEC, ["SPY"], "d1", dt.date(2024, 11, 25), dt.date(2024, 12, 2))
    days = sorted({ts.date() for ts in bars["ts"]})
    assert dt.date(2024, 11, 28) not in days  # Thanksgiving
    assert days == calendar.sessions_between("XNYS", dt.date(2024, 11, 25), dt.date(2024, 12, 2))
    hourly = generate_bars(SPEC, ["SPY"], "h1", dt.date(2024, 11, 29), dt.date(2024, 11, 29))
    assert len(hourly) == 4  # early close at 13:00: 09:30, 10:30, 11:30, 12:30


def test_benchmark_correlation():
    bars = generate_bars(SPEC, SYMBOLS, "d1", dt.date(2019, 1, 2), dt.date(2023, 12, 29))
    returns = bars.pivot(index="ts", columns="symbol", values="close").apply(np.log).diff().dropna()
    corr = returns.corr()
    assert corr.loc["AAA", "SPY"] > 0.4 and corr.loc["BBB", "SPY"] > 0.4


def _signal_corr(spec: GeneratorSpec, start=dt.date(2018, 1, 2), end=dt.date(2025, 12, 31)) -> float:
    """Correlation of a bar's wick skew (where the planted order flow shows) with the next 5 bars' return."""
    bars = generate_bars(spec, ["AAA"], "d1", start, end)
    o, h, lo, c = (bars[k].to_numpy() for k in ("open", "high", "low", "close"))
    skew = ((np.minimum(o, c) - lo) - (h - np.maximum(o, c))) / (h - lo)
    logp = np.log(c)
    future = logp[5:] - logp[:-5]
    return float(np.corrcoef(skew[:-5], future)[0, 1])


def test_planted_signal_is_present_and_absent_at_zero_strength():
    present = _signal_corr(GeneratorSpec(seed=3, signal_strength=0.4))
    absent = _signal_corr(GeneratorSpec(seed=3, signal_strength=0.0))
    assert present > 0.15
    assert abs(absent) < 0.07  # ~2,000 overlapping 5-bar windows: noise of a few hundredths
    assert present > abs(absent) + 0.1


def test_distribution_shift_after_date():
    spec = GeneratorSpec(seed=5, signal_strength=0.4, shift_after=dt.date(2023, 1, 2))
    bars = generate_bars(spec, ["AAA"], "d1", dt.date(2020, 1, 2), dt.date(2025, 12, 31))
    bars["ret"] = np.log(bars["close"]).diff()
    before = bars[bars["ts"] < "2023-01-01"]
    after = bars[bars["ts"] > "2023-01-04"]
    assert after["ret"].std() > 1.5 * before["ret"].std()
    assert after["volume"].median() > 2 * before["volume"].median()
    baseline = generate_bars(GeneratorSpec(seed=5, signal_strength=0.4), ["AAA"], "d1", dt.date(2020, 1, 2), dt.date(2022, 12, 30))
    assert baseline.equals(before.drop(columns="ret").reset_index(drop=True))  # history before the shift unchanged
    assert _signal_corr(spec, dt.date(2023, 1, 3), dt.date(2025, 12, 31)) < -0.05  # the flow effect reversed
