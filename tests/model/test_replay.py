"""`market-mlops replay`: the retrain policy over history, with the suite's own training, gate and drift decisions."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from market_mlops.analysis.replay import parse_policy

if TYPE_CHECKING:
    import pandas as pd

SHIFT = dt.date(2025, 1, 31)  # the market changes character after this session


def test_a_policy_is_parts_joined_by_plus_and_static_has_none():
    assert parse_policy("monthly+weekly+emergency") == {"monthly", "weekly", "emergency"}
    assert parse_policy("static") == frozenset()
    with pytest.raises(ValueError, match=r"unknown policy part\(s\) \['hourly'\]"):
        parse_policy("monthly+hourly")


def _regime_change_bars(symbol: str, start: dt.date, end: dt.date, phi_before: float, phi_after: float,
                        seed: int, vol_after: float = 2.0) -> pd.DataFrame:
    """Hourly NYSE bars whose returns follow an AR(1): mean reversion (`phi_before` < 0) until SHIFT, then momentum
    (`phi_after` > 0) at `vol_after` times the volatility. A model of the first regime calls the second one
    backwards; persistence of the last label, useless before, reads the second one."""
    import numpy as np
    import pandas as pd

    from market_mlops.data import calendar

    stamps = calendar.bar_opens("XNYS", 60, calendar.sessions_between("XNYS", start, end))
    rng = np.random.default_rng(seed)
    after = stamps["session"].to_numpy() > np.datetime64(SHIFT)
    phi = np.where(after, phi_after, phi_before)
    noise = rng.normal(0, 0.004, len(stamps)) * np.where(after, vol_after, 1.0)
    returns = np.zeros(len(stamps))
    for i in range(1, len(stamps)):
        returns[i] = phi[i] * returns[i - 1] + noise[i]
    close = 100 * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0, 0.001, (2, len(stamps))))
    return pd.DataFrame({"ts": stamps["ts"], "symbol": symbol, "open": open_, "close": close,
                         "high": np.maximum(open_, close) * (1 + wick[0]), "low": np.minimum(open_, close) * (1 - wick[1]),
                         "volume": np.round(1e5 * np.exp(rng.normal(0, 0.3, len(stamps))))})


@pytest.fixture
def shifted_history(mlops_home, monkeypatch):
    """Two symbols of hourly bars whose market turns from mean reversion to momentum two months into the replay,
    imported as a user imports vendor files."""
    from market_mlops.cli import main
    from market_mlops.dev.vendor_files import write_intraday_csv

    # The default configuration (training, labels, gate, bands, cooldown): only the universe is narrowed.
    settings = {"MLOPS__UNIVERSE__SYMBOLS": "AAA,BBB", "MLOPS__UNIVERSE__BENCHMARK": "", "MLOPS__UNIVERSE__TIMEFRAMES": "h1",
                "MLOPS__UNIVERSE__CALENDARS": "{}"}
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    for seed, symbol in enumerate(("AAA", "BBB")):
        bars = _regime_change_bars(symbol, dt.date(2023, 9, 1), dt.date(2025, 10, 31), -0.8, 0.6, seed)
        write_intraday_csv(bars, mlops_home / "vendor" / f"{symbol}_h1.csv")
    assert main(["import", str(mlops_home / "vendor")]) == 0
    return mlops_home


@pytest.mark.training
def test_on_defaults_the_drift_triggered_policy_recovers_after_the_shift_and_static_is_what_production_served(
        shifted_history, capsys):
    from market_mlops.cli import main
    from market_mlops.data import calendar
    from market_mlops.registry import store

    assert main(["replay", "--from", "2024-12-01", "--to", "2025-07-01", "--policy", "monthly",
                 "--policy", "weekly", "--policy", "emergency"]) == 0
    printed = capsys.readouterr().out
    assert "vs static (interval)" in printed and "verdict" in printed and "serving at the end" in printed
    folder = next(Path(shifted_history, "replays").iterdir())
    report = json.loads((folder / "report.json").read_text())
    chart = (folder / "chart.svg").read_text()
    assert chart.startswith("<svg") and all(p in chart for p in ("static", "monthly", "emergency"))
    assert report["policies"] == ["static", "monthly", "weekly", "emergency"] and set(report["models"]) == {"AAA-h1", "BBB-h1"}
    june = calendar.sessions_between("XNYS", dt.date(2025, 6, 1), dt.date(2025, 6, 30))
    for model in report["models"].values():
        static, monthly, weekly, emergency = (model[p] for p in report["policies"])
        initial = static["events"][0]
        assert initial["kind"] == "initial model" and [e["kind"] for e in static["events"]] == ["initial model"]
        assert static["retrains"] == static["refreshes"] == static["promotions"] == 0  # served as production would
        if initial["decision"] != "promoted":  # the gate refused the model: production served the better baseline
            assert static["serving_at_end"].startswith("v2 (") and "baseline" in static["serving_at_end"]
        assert [e["at"][:7] for e in monthly["events"] if e["kind"] == "monthly retrain"] == [
            "2025-01", "2025-02", "2025-03", "2025-04", "2025-05", "2025-06"]  # on each month's first session
        assert weekly["refreshes"] == 30 and weekly["retrains"] == 0
        assert static["forecasts"] == emergency["forecasts"] > 900  # every policy forecasts the same bars
        # Every bar of June is scored, the last session's too: bars after --to resolve their labels (nothing else).
        assert static["months"][-1] == {**static["months"][-1], "month": "2025-06", "forecasts": 7 * len(june)}
        times = [dt.date.fromisoformat(e["at"]) for e in emergency["events"] if e["kind"] == "emergency retrain"]
        assert all(t > SHIFT for t in times) and all((b - a).days >= 7 for a, b in zip(times, times[1:], strict=False))
        every_reason = " ".join(e["reason"] for p in model.values() for e in p["events"])
        assert "vcurrent" not in every_reason and "vnew" not in every_reason  # reasons name real versions

    # On the default gate neither initial model is proven over persistence, which reads the mean reversion itself
    # (its skill over it is a few hundredths of a nat on ~65 outcomes): production served the persistence baseline
    # from the first session, and so did every policy until a model was proven.
    for model in report["models"].values():
        initial = model["static"]["events"][0]
        assert initial["decision"] == "kept as challenger", initial
        assert initial["reason"].startswith("skill over the ") and "(needs 240)" in initial["reason"]
        assert "persistence baseline" in model["static"]["serving_at_end"]
        retrains = [e for e in model["monthly"]["events"] if e["kind"] == "monthly retrain"]
        assert all(e["decision"] in ("kept as challenger", "promoted", "too few outcomes") for e in retrains)

    summary = report["summary"]
    assert summary["static"]["verdict"] == "the reference"
    low, high = summary["emergency"]["vs_static"]["accuracy_ci"]
    assert low <= summary["emergency"]["vs_static"]["accuracy_diff"] <= high
    assert summary["emergency"]["verdict"].startswith(("better than static", "no measurable difference"))
    run = store.client().get_run(report["artifacts"]["mlflow_run_id"])
    assert run.data.params["policies"] == "static,monthly,weekly,emergency" and "emergency.accuracy" in run.data.metrics


@pytest.mark.training
def test_a_replay_over_2008_reports_the_crisis_window_and_the_resampled_book(mlops_home, monkeypatch, capsys):
    """Daily stock files from 2003 imported as a user imports them; a replay from mid 2008 to mid 2009 prints each
    policy's calls on the 2008-09..2009-03 window and its long/short book over 1,000 stationary-bootstrap paths
    (the stress settings are the defaults; training is narrowed, as the rows judge calls, not fits)."""
    from market_mlops.cli import main
    from market_mlops.data.synthetic import GeneratorSpec, generate_bars
    from market_mlops.dev.vendor_files import write_daily_csv

    settings = {"MLOPS__UNIVERSE__SYMBOLS": "OLD", "MLOPS__UNIVERSE__BENCHMARK": "", "MLOPS__UNIVERSE__TIMEFRAMES": "d1",
                "MLOPS__UNIVERSE__CALENDARS": "{}", "MLOPS__TRAINING__RF_ESTIMATORS": "60",
                "MLOPS__TRAINING__BOOST_ROUNDS": "80", "MLOPS__TRAINING__FOLDS": "3"}
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    # A market whose flow effect is strong enough that what serves trades (at the default strength the gate keeps
    # the climatology baseline, whose book never takes a position: said so, nothing to resample).
    bars = generate_bars(GeneratorSpec(seed=5, origin=dt.date(2003, 1, 2), benchmark=None, signal_strength=1.0),
                         ["OLD"], "d1", dt.date(2003, 1, 2), dt.date(2009, 9, 30))
    write_daily_csv(bars, mlops_home / "vendor" / "OLD.csv")
    assert main(["import", str(mlops_home / "vendor")]) == 0
    capsys.readouterr()
    assert main(["replay", "--from", "2008-06-02", "--to", "2009-06-01", "--policy", "monthly"]) == 0
    printed = capsys.readouterr().out.splitlines()
    for policy in ("static", "monthly"):
        [stress] = [line for line in printed if line.startswith(f"  OLD-d1 {policy} stress 2008-09..2009-03")]
        assert re.fullmatch(r"  OLD-d1 \w+ stress 2008-09\.\.2009-03 \(financial crisis\) \(2008-09-02 \.\. "
                            r"2009-03-31, 14\d forecasts\): accuracy 0\.\d{3}, log-loss skill [+-]\d\.\d{4} nats over "
                            r"climatology, IC (n/a|[+-]?\d\.\d{3}), long/short [+-]\d+\.\d%.*", stress), stress
        [book] = [line for line in printed if line.startswith(f"  OLD-d1 {policy} resampled book: ")]
        assert re.search(r"Sharpe [+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\], max drawdown .* P\(loss\) [01]\.\d\d "
                         r"over 1000 paths", book), book
    assert not any("2020-02..2020-04" in line or "2022 (rate" in line for line in printed)  # not covered: not said
