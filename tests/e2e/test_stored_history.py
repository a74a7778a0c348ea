"""The gate against the stored history, through `market-mlops import`: a file whose first bar does not continue the
stored bars (cents for dollars, another ticker, a 30% gap) is refused naming both bars, and a file that changes
stored bars is refused unless the restatement is allowed (then counted and alerted)."""

from __future__ import annotations

import datetime as dt

import pytest

from market_mlops.config import get_config
from market_mlops.data.synthetic import GeneratorSpec, generate_bars
from market_mlops.data.versioning import read_version, version_history
from market_mlops.dev.vendor_files import write_daily_csv
from tests.e2e.test_import import market_mlops
from tests.files import parquet_digests

pytestmark = pytest.mark.e2e
SPEC = GeneratorSpec(seed=5, benchmark=None)
NEXT = dt.date(2024, 7, 1)


@pytest.fixture
def stored(mlops_home, monkeypatch):
    """AAPL's first half of 2024 imported; `bars` holds the generated bars up to the next session."""
    monkeypatch.setenv("MLOPS__UNIVERSE__SYMBOLS", "AAPL,MSFT")
    monkeypatch.setenv("MLOPS__UNIVERSE__BENCHMARK", "")
    monkeypatch.setenv("MLOPS__UNIVERSE__TIMEFRAMES", "d1")
    bars = generate_bars(SPEC, ["AAPL", "MSFT"], "d1", dt.date(2024, 1, 2), NEXT)
    aapl = bars[bars["symbol"] == "AAPL"].reset_index(drop=True)
    history = write_daily_csv(aapl[aapl["ts"].dt.date < NEXT], mlops_home / "vendor" / "AAPL.csv")
    assert market_mlops("import", str(history)).returncode == 0
    return mlops_home, bars, history


def _session_file(home, bars, symbol: str, name: str, price_factor: float = 1.0):
    row = bars[(bars["symbol"] == symbol) & (bars["ts"].dt.date == NEXT)].copy()
    for col in ("open", "high", "low", "close"):
        row[col] = row[col] * price_factor
    return write_daily_csv(row, home / "drops" / NEXT.isoformat() / name)


def _unchanged(home, before_digests, before_version):
    cfg = get_config()
    assert parquet_digests(cfg.data_root / "dataset") == before_digests
    assert read_version(cfg.data_root) == before_version


@pytest.mark.parametrize(("symbol", "factor", "check"), [
    ("AAPL", 100.0, "continuity_unit_change"),  # cents for dollars
    ("MSFT", 1.0, "continuity_"),  # another ticker's prices under AAPL's name
    ("AAPL", 1.3, "continuity_price_gap"),  # a 30% jump
])
def test_a_file_that_does_not_continue_the_stored_bars_is_refused_naming_both(stored, symbol, factor, check):
    home, bars, _ = stored
    cfg = get_config()
    digests, version = parquet_digests(cfg.data_root / "dataset"), read_version(cfg.data_root)
    last_close = bars[(bars["symbol"] == "AAPL") & (bars["ts"].dt.date < NEXT)]["close"].iloc[-1]
    path = _session_file(home, bars, symbol, "AAPL_d1.csv", factor)

    out = market_mlops("import", str(path))
    error = out.stderr.strip().splitlines()[-1]  # what the command says last: one line
    assert out.returncode == 1 and error.startswith("error: ") and check in error, out.stderr
    sent = bars[(bars["symbol"] == symbol) & (bars["ts"].dt.date == NEXT)]["close"].iloc[0] * factor
    assert f"close {round(sent, 4):g} at {NEXT} 00:00" in error, error
    assert f"stored close {round(last_close, 4):g} at 2024-06-28" in error, error
    _unchanged(home, digests, version)

    assert market_mlops("import", str(_session_file(home, bars, "AAPL", "AAPL_d1.csv"))).returncode == 0  # the right file


def test_a_session_ingested_again_is_not_judged_against_the_day_before_it(stored):
    """A 30 % jump accepted once (--accept-gaps) is stored; the same session's file again (as the UI's run of a
    session already ingested) holds only stored bars: nothing to continue, it merges unchanged, no gap is claimed."""
    home, bars, _ = stored
    jump = _session_file(home, bars, "AAPL", "AAPL_d1.csv", 1.3)
    assert market_mlops("import", "--accept-gaps", str(jump)).returncode == 0
    cfg = get_config()
    digests, version = parquet_digests(cfg.data_root / "dataset"), read_version(cfg.data_root)
    again = market_mlops("import", str(jump))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "continuity" not in again.stdout + again.stderr and "unchanged" in again.stdout, again.stdout[-2000:]
    _unchanged(home, digests, version)


def test_a_real_gap_goes_through_when_the_run_accepts_it(stored):
    home, bars, _ = stored
    out = market_mlops("import", "--accept-gaps", str(_session_file(home, bars, "AAPL", "AAPL_d1.csv", 1.3)))
    assert out.returncode == 0, out.stderr
    assert "continuity_price_gap" in out.stdout  # still reported, as a warning


def test_a_restated_history_is_refused_then_counted_and_alerted_when_allowed(stored):
    home, bars, history = stored
    cfg = get_config()
    digests, version = parquet_digests(cfg.data_root / "dataset"), read_version(cfg.data_root)
    aapl = bars[(bars["symbol"] == "AAPL") & (bars["ts"].dt.date < NEXT)].reset_index(drop=True)
    restated = aapl.copy()
    first_40 = restated.index < 40  # as if adjusted for a later 2:1 split: half the price, twice the volume
    for col in ("open", "high", "low", "close"):
        restated.loc[first_40, col] = restated.loc[first_40, col] / 2
    restated.loc[first_40, "volume"] = restated.loc[first_40, "volume"] * 2
    write_daily_csv(restated, history)

    out = market_mlops("import", str(history))
    error = out.stderr
    assert out.returncode == 1, error
    assert "restatement" in error and "AAPL d1: 40 stored bar(s) would change between 2024-01-02" in error, error
    assert "largest change +100.0% (volume at" in error and "allow_restatement" in error
    _unchanged(home, digests, version)

    out = market_mlops("import", "--allow-restatement", str(history))
    assert out.returncode == 0, out.stderr
    assert "stored rows restated: AAPL 40" in out.stdout
    record = version_history()[-1]
    assert record["rows_changed"] == {"AAPL": 40} and record["rows_unchanged"] == len(aapl) - 40
    assert record["rows_added"] == {"AAPL": 0}
    from market_mlops.monitoring.alerts import Outbox

    alerts = Outbox(cfg).records()
    assert any(a["alert"]["title"] == "Stored market history changed" for a in alerts), alerts

    again = market_mlops("import", str(history))  # the restated history is now the stored one
    assert again.returncode == 0 and "stored rows restated" not in again.stdout
