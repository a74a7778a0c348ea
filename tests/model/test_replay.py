"""`market-mlops replay`: the retrain policy over history, with the suite's own training, gate and drift decisions."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from market_mlops.tasks.replay import parse_policy

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
    """Hourly NYSE bars whose returns follow an AR(1): momentum (`phi_before` > 0) until SHIFT, then mean reversion
    (`phi_after` < 0) at `vol_after` times the volatility. A model of the first regime calls the second one
    backwards; a model retrained on a few weeks of the second can tell them apart by their volatility."""
    import numpy as np
    import pandas as pd

    from market_mlops.data import calendar

    stamps = calendar.bar_opens("XNYS", 60, calendar.sessions_between("XNYS", start, end))
    rng = np.random.default_rng(seed)
    phi = np.where(stamps["session"].to_numpy() > np.datetime64(SHIFT), phi_after, phi_before)
    phi = np.where(stamps["session"].to_numpy() > np.datetime64(SHIFT), phi_after, phi_before)
    after = stamps["session"].to_numpy() > np.datetime64(SHIFT)
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
    """Two symbols of hourly bars whose market turns from momentum to mean reversion half way through the replay,
    imported as a user imports vendor files."""
    from market_mlops.cli import main
    from market_mlops.dev.vendor_files import write_intraday_csv

    # A short history and a small holdout: a retrain can learn a market four weeks old. Bands this change crosses
    # within days (the defaults call a 7-point drop "monitor"), a 3-day cooldown.
    settings = {"MLOPS__UNIVERSE__SYMBOLS": "AAA,BBB", "MLOPS__UNIVERSE__BENCHMARK": "", "MLOPS__UNIVERSE__TIMEFRAMES": "h1",
                "MLOPS__UNIVERSE__CALENDARS": "{}", "MLOPS__TIMEFRAMES__H1__THRESHOLD": "0.002",
                "MLOPS__TRAINING__HISTORY_YEARS": "1", "MLOPS__TRAINING__HOLDOUT_FRACTION": "0.06",
                "MLOPS__TRAINING__FOLDS": "3", "MLOPS__TRAINING__MIN_TRAIN_ROWS": "100",
                "MLOPS__TRAINING__BOOTSTRAP_SAMPLES": "200", "MLOPS__TRAINING__RF_ESTIMATORS": "30",
                "MLOPS__TRAINING__BOOST_ROUNDS": "100", "MLOPS__DRIFT__MONITOR_BELOW": "-3",
                "MLOPS__DRIFT__DRIFT_BELOW": "-6", "MLOPS__DRIFT__EMERGENCY_BELOW": "-10", "MLOPS__DRIFT__COOLDOWN_DAYS": "3"}
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    for seed, symbol in enumerate(("AAA", "BBB")):
        bars = _regime_change_bars(symbol, dt.date(2023, 9, 1), dt.date(2025, 10, 31), 0.5, -0.8, seed)
        write_intraday_csv(bars, mlops_home / "vendor" / f"{symbol}_h1.csv")
    assert main(["import", str(mlops_home / "vendor")]) == 0
    return mlops_home


@pytest.mark.training
def test_the_drift_triggered_policy_recovers_sooner_than_the_static_model(shifted_history, capsys):
    from market_mlops.cli import main
    from market_mlops.registry import store

    assert main(["replay", "--from", "2024-12-01", "--to", "2025-07-01", "--policy", "monthly",
                 "--policy", "weekly", "--policy", "emergency"]) == 0
    printed = capsys.readouterr().out
    assert "vs static" in printed and "emergency" in printed
    folder = next(Path(shifted_history, "replays").iterdir())
    report = json.loads((folder / "report.json").read_text())
    chart = (folder / "chart.svg").read_text()
    assert chart.startswith("<svg") and all(p in chart for p in ("static", "monthly", "emergency"))
    assert report["policies"] == ["static", "monthly", "weekly", "emergency"] and set(report["models"]) == {"AAA-h1", "BBB-h1"}
    for model in report["models"].values():
        static, monthly, weekly, emergency = (model[p] for p in report["policies"])
        assert static["retrains"] == static["refreshes"] == static["promotions"] == 0  # trained once, at the start
        assert [e["at"][:7] for e in monthly["events"]] == ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05",
                                                            "2025-06"]  # on each month's first session
        assert weekly["refreshes"] == 30 and weekly["retrains"] == 0
        times = [dt.date.fromisoformat(e["at"]) for e in emergency["events"]]
        assert times and times[0] > SHIFT and all((b - a).days >= 3 for a, b in zip(times, times[1:], strict=False))
        assert static["forecasts"] == emergency["forecasts"] > 900  # every policy forecasts the same bars
    summary = report["summary"]
    static, emergency = summary["static"]["months"], summary["emergency"]["months"]
    # The market changes: the static model breaks, and stays broken.
    assert static["2025-01"] - max(static["2025-03"], static["2025-04"]) > 0.1
    # The drift-triggered retrains get a model of the new market through the gate before the static model (never)
    # or the monthly retrain (not within the replay) do, and it shows in the last three months.
    late = ["2025-04", "2025-05", "2025-06"]
    assert summary["emergency"]["promotions"] >= 1 and summary["monthly"]["promotions"] == 0
    assert sum(emergency[m] for m in late) / 3 > sum(static[m] for m in late) / 3 + 0.03, (emergency, static)
    assert summary["emergency"]["vs_static_points"] > 0
    run = store.client().get_run(report["artifacts"]["mlflow_run_id"])
    assert run.data.params["policies"] == "static,monthly,weekly,emergency" and "emergency.accuracy" in run.data.metrics
