"""The drift check's bands on their defaults, through the DAG (issue 45): a year of daily checks on a market that does
not change raises no emergency and no drift band but where the calls really fell, and after the market changes the
check's band is what its detectors read on the stored calls.

Champions are trained once (cutoff 2024-08-01) and then checked: each drift check scores every bar since the cutoff
and runs the detectors over every call resolved since the champion began serving, so the check at the end of a
stretch reads the same statistic a check after each session would have, and `band_path` over the stored calls says
what those checks read. A planted loss of the champions' edge is then read as drift within the bench's goal.
Training is narrowed (fewer trees, 3 folds: the bands judge calls, not fits); the market
and the drift settings are the defaults.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from market_mlops.data.calendar import session
from market_mlops.dev.bench.learning_loop import DELAY_GOALS

from .conftest import run_dag

pytestmark = [pytest.mark.e2e, pytest.mark.training]
FAST = {"MLOPS__TRAINING__RF_ESTIMATORS": "60", "MLOPS__TRAINING__BOOST_ROUNDS": "80", "MLOPS__TRAINING__FOLDS": "3",
        "MLOPS__TRAINING__HISTORY_YEARS": "5", "MLOPS__TRAINING__MIN_TRAIN_ROWS": "200",
        "MLOPS__UNIVERSE__SYMBOLS": "SPY,AAPL", "MLOPS__UNIVERSE__TIMEFRAMES": "d1"}
CUTOFF = dt.date(2024, 8, 1)
QUIET_END = dt.date(2025, 8, 29)  # ~270 sessions after the cutoff, no change of the market
SHIFT = dt.date(2025, 9, 2)  # the generator's order-flow effect reverses from here
CHANGED_END = dt.date(2026, 4, 30)  # about 165 sessions of the changed market: the goal below and a horizon
ORDER = {None: -1, "normal": 0, "monitor": 1, "drift": 2, "emergency": 3}
DRIFT_DELAY_GOAL = {h: goal for (h, drop), goal in DELAY_GOALS.items() if drop == 10}


def _after_close(day: dt.date) -> dt.datetime:
    return session("XNYS", day).close.to_pydatetime() + dt.timedelta(minutes=45)


def _calls(name: str, symbol: str, until: dt.date):
    """The champion's resolved calls (time order) and what it is held to, as the drift check reads them."""

    from market_mlops.config import get_config
    from market_mlops.data.dataset import load_bars
    from market_mlops.data.versioning import head_dataset
    from market_mlops.monitoring.forecasts import load_forecasts, resolved_forecasts
    from market_mlops.registry import store

    cfg = get_config()
    c = store.client()
    champion = c.get_model_version_by_alias(name, "champion")
    metrics = c.get_run(champion.run_id).data.metrics
    forecasts = load_forecasts(symbol, "d1", cfg, model_version=str(champion.version), model_name=name)
    forecasts = forecasts[forecasts["ts"] < pd.Timestamp(_after_close(until))]
    bars = load_bars(head_dataset(cfg), "d1", [symbol], until=_after_close(until))
    spec = cfg.spec("d1")
    resolved = resolved_forecasts(forecasts, bars, spec.horizon, spec.labels)
    return resolved, metrics["drift.reference_accuracy"], metrics["drift.reference_rows"], spec.horizon


def test_a_quiet_year_raises_no_false_alarm_and_the_band_is_the_detectors(dagbag, mlops_home, monkeypatch):
    from market_mlops.config import get_config
    from market_mlops.monitoring.detector import band_path, detect
    from market_mlops.monitoring.history import drift_history

    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    # The market's flow effect twice the default's: the narrowed training's champions then hold an edge worth losing
    # when it reverses (at 0.3 they sit near their baselines and the reversal moves them less than a band's edge).
    monkeypatch.setenv("MLOPS__SOURCE__SYNTHETIC__SIGNAL_STRENGTH", "0.6")
    ingest, drift = dagbag.dags["market_data_ingestion"], dagbag.dags["drift_check"]
    assert run_dag(ingest, _after_close(CUTOFF - dt.timedelta(days=1)), {"history_start": "2019-01-02"}) == "success"
    assert run_dag(dagbag.dags["model_retrain"], dt.datetime.combine(CUTOFF, dt.time(), dt.UTC),
                   {"force_promotion": True, "until": None, "reason": "test", "search_trials": 0}) == "success"
    names = {"SPY": "SPY-d1-direction", "AAPL": "AAPL-d1-direction"}

    # A quiet year: one check at its end reads every call since the cutoff; no check along it raised a band.
    assert run_dag(ingest, _after_close(QUIET_END), {"history_start": CUTOFF.isoformat()}) == "success"
    assert run_dag(drift, _after_close(QUIET_END), {}) == "success"
    quiet = {r["model"]: r for r in drift_history(get_config()) if r["interval_end"].startswith(QUIET_END.isoformat())}
    cfg = get_config().drift
    for symbol, name in names.items():
        resolved, reference, rows, horizon = _calls(name, symbol, QUIET_END)
        assert len(resolved) >= 200 + horizon, len(resolved)
        hits = resolved["correct"].to_numpy(bool)
        path = band_path(hits, reference, rows, horizon, 1, cfg)
        held = detect(hits, reference, rows, horizon, 1, cfg).held
        # The market did not change, but the generator's volatility regimes move a champion's accuracy (one champion
        # here called 7-16 % right for two months against a reference of 36 %): a band is read in this year only
        # where the calls really fell, the last 60 of them at least the band's edge under the accuracy the champion
        # is held to, never on a stretch that looks like its reference.
        for i, band in enumerate(path):
            if band in ("drift", "emergency"):
                recent = hits[max(0, i - 59):i + 1].mean()
                assert recent <= held + (cfg.drift_below if band == "drift" else cfg.emergency_below) / 100, (
                    name, i, band, recent, held)
        assert sum(b in ("drift", "emergency") for b in path) <= 0.10 * len(path), name
        assert quiet[name]["band"] == (path[-1] or "normal") and quiet[name]["outcomes_needed"] is None, quiet[name]
        assert "CUSUM on" in quiet[name]["band_reason"] and "held to" in quiet[name]["band_reason"]

    # The market changes: the order-flow effect reverses (the generator's `flow` shift, on an otherwise unchanged
    # market). The check at the end reads exactly what the detectors read on the stored calls. What the reversal does
    # to a champion depends on what it learned (with this seed SPY's calls fall 15 points, AAPL's rise): a champion
    # whose calls fell by the drift band's edge below what it is held to is read as drift within the bench's goal.
    monkeypatch.setenv("MLOPS__SOURCE__SYNTHETIC__SHIFT_AFTER", (SHIFT - dt.timedelta(days=1)).isoformat())
    monkeypatch.setenv("MLOPS__SOURCE__SYNTHETIC__SHIFT_KIND", "flow")
    assert run_dag(ingest, _after_close(CHANGED_END), {"history_start": SHIFT.isoformat()}) == "success"
    assert run_dag(drift, _after_close(CHANGED_END), {}) == "success"
    changed = {r["model"]: r for r in drift_history(get_config())
               if r["interval_end"].startswith(CHANGED_END.isoformat())}
    dropped = []
    for symbol, name in names.items():
        resolved, reference, rows, horizon = _calls(name, symbol, CHANGED_END)
        hits = resolved["correct"].to_numpy(bool)
        detection = detect(hits, reference, rows, horizon, 1, cfg)
        assert changed[name]["band"] == (detection.band or "normal"), (changed[name]["band_reason"], detection)
        assert changed[name]["band_reason"].startswith(detection.describe()), changed[name]["band_reason"]
        shifted = int((resolved["ts"] < pd.Timestamp(SHIFT, tz="UTC")).sum())  # the first call made after the change
        after = hits[shifted:].mean()
        if after > detection.held + cfg.drift_below / 100:
            continue
        dropped.append(name)
        path = band_path(hits, reference, rows, horizon, 1, cfg, reset_on=None, checks=np.arange(shifted, len(hits)))
        fired = [i for i in range(shifted, len(path)) if ORDER[path[i]] >= ORDER["drift"]]
        delay = fired[0] - shifted + horizon if fired else None  # sessions from the change to drift, as make bench
        assert delay is not None and delay <= DRIFT_DELAY_GOAL[horizon], (name, delay, after, detection.held)
    assert dropped == ["SPY-d1-direction"], dropped  # the plant took where this seed puts it
