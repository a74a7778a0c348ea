from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from market_mlops.config import Drift, load_config
from market_mlops.monitoring.bands import decide_emergency
from market_mlops.monitoring.drift import (
    feature_drift,
    ks_distance,
    psi,
    psi_from_shares,
    psi_null_thresholds,
)


def test_psi_matches_a_hand_computed_value():
    # Two bins from the reference median: reference 50/50, current 80/20.
    reference = np.array([0.0] * 50 + [1.0] * 50)
    current = np.array([0.0] * 80 + [1.0] * 20)
    expected = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert psi(reference, current, bins=2) == pytest.approx(expected, rel=1e-6)
    assert psi_from_shares([50, 50], [80, 20]) == pytest.approx(expected, rel=1e-6)


def test_psi_and_ks_on_known_distributions():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=5000)
    same = rng.normal(size=5000)
    shifted = rng.normal(loc=1.0, size=5000)
    assert psi(reference, same) < 0.02
    assert psi(reference, shifted) > 0.5  # a one-sigma shift is a large PSI
    statistic = ks_distance(reference, shifted)
    assert statistic == pytest.approx(stats.ks_2samp(reference, shifted).statistic, abs=1e-12)
    tied = np.round(shifted[:300], 1)  # ties and unequal sizes
    assert ks_distance(reference, tied) == pytest.approx(stats.ks_2samp(reference, tied).statistic, abs=1e-12)
    assert statistic == pytest.approx(0.38, abs=0.03)  # Phi(0.5) - Phi(-0.5) for N(0,1) vs N(1,1)


def test_identical_distributions_give_no_drift():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({f"f{i}": rng.normal(size=2000) for i in range(20)})
    current = pd.DataFrame({f"f{i}": rng.normal(size=60) for i in range(20)})
    drifts = feature_drift(frame, current, Drift())
    assert sum(d.drifted for d in drifts) <= 1  # at most a chance hit among 20 features
    assert not any(d.drifted for d in feature_drift(frame, frame.sample(500, random_state=0), Drift()))
    moved = current.assign(f0=current["f0"] + 3)
    assert next(d for d in feature_drift(frame, moved, Drift()) if d.feature == "f0").drifted


def _slow_ar1(rng: np.random.Generator, n: int, phi: float = 0.995) -> np.ndarray:
    x = np.zeros(n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + rng.normal()
    return x


def test_slow_features_are_judged_against_their_own_history():
    """A 60-bar window of a slow, unchanged process looks unlike 2,000 bars of it (a 200-bar average, the month of
    the year): the calibrated limit does not call that drift; the bare PSI floor does. A real shift still shows."""
    rng = np.random.default_rng(5)
    series = _slow_ar1(rng, 2000 + 20 * 60)
    reference = pd.DataFrame({"slow": series[:2000], "fast": rng.normal(size=2000)})
    cfg = Drift()
    limits = psi_null_thresholds(reference, 60, cfg.null_quantile)
    assert limits["slow"] > 1.0 > cfg.psi_alert > limits["fast"]  # slow windows wander far, iid ones do not

    calibrated, floor_only = 0, 0
    for k in range(20):  # twenty later windows of the same processes
        current = pd.DataFrame({"slow": series[2000 + 60 * k:2060 + 60 * k], "fast": rng.normal(size=60)})
        calibrated += sum(d.drifted for d in feature_drift(reference, current, cfg, limits))
        floor_only += sum(d.drifted for d in feature_drift(reference, current, cfg, {}))
    assert calibrated <= 4 and floor_only >= 15, (calibrated, floor_only)

    shifted = pd.DataFrame({"slow": series[2000:2060], "fast": rng.normal(loc=1.5, size=60)})
    flags = {d.feature: d.drifted for d in feature_drift(reference, shifted, cfg)}  # limits computed on the fly
    assert flags["fast"] and not flags["slow"]


def test_null_thresholds_grow_with_the_quantile_and_skip_short_features():
    rng = np.random.default_rng(6)
    reference = pd.DataFrame({"a": rng.normal(size=1000), "short": np.r_[rng.normal(size=100), np.full(900, np.nan)]})
    low, high = psi_null_thresholds(reference, 60, 0.6), psi_null_thresholds(reference, 60, 1.0)
    assert 0 < low["a"] < high["a"] and "short" not in low  # 100 finite values < two windows: no estimate


@pytest.mark.parametrize(("band", "days_ago", "retrain", "cooling"), [
    ("emergency", None, True, False),   # no earlier trigger
    ("emergency", 2, False, True),      # inside the 7-day cooldown
    ("emergency", 6.99, False, True),   # the window is (end - 7 days, end]
    ("emergency", 7, True, False),      # open at its start: exactly 7 days ago is outside
    ("emergency", -1, True, False),     # a trigger after this interval (a backfill run later) does not count
    ("drift", None, False, False),      # only the emergency band retrains
    ("drift", 2, False, False),
])
def test_emergency_decision_and_its_cooldown(band, days_ago, retrain, cooling):
    end = dt.datetime(2025, 11, 14, 21, tzinfo=dt.UTC)
    earlier = [] if days_ago is None else [end - dt.timedelta(days=days_ago)]
    decision = decide_emergency(band, end, earlier, cooldown_days=7)
    assert (decision.retrain, decision.in_cooldown) == (retrain, cooling)
    assert ("cooldown" in decision.reason) == cooling


def test_cooldown_reads_the_drift_history_of_that_model_only(mlops_home):
    from market_mlops.monitoring.history import (
        emergency_triggers,
        emergency_triggers_of_fleet,
        record_drift_check,
    )
    from market_mlops.tasks.drift_check import emergency_retrain_confs

    cfg = load_config()
    end = dt.datetime(2025, 11, 14, 21, tzinfo=dt.UTC)
    assert emergency_triggers("AAA-d1-direction", cfg) == []
    for days, triggered in ((2, True), (1, False)):
        record = {"model": "AAA-d1-direction", "version": "1", "band": "emergency",
                  "interval_end": (end - dt.timedelta(days=days)).isoformat(), "emergency_retrain_triggered": triggered}
        record_drift_check(record, cfg)
        record_drift_check(record, cfg)  # a retried task writes the same row, not a second one
    assert emergency_triggers("AAA-d1-direction", cfg) == [end - dt.timedelta(days=2)]
    assert emergency_triggers("BBB-d1-direction", cfg) == []
    assert decide_emergency("emergency", end, emergency_triggers("AAA-d1-direction", cfg), cfg.drift.cooldown_days).in_cooldown
    # The drift DAG reads every model's cooldown in one query: the same answer.
    week = dt.timedelta(days=cfg.drift.cooldown_days)
    assert emergency_triggers_of_fleet(end - week, end, cfg) == {"AAA-d1-direction": [end - dt.timedelta(days=2)]}
    assert emergency_triggers_of_fleet(end - week, end - dt.timedelta(days=3), cfg) == {}
    results = [{"model": "AAA-d1-direction", "version": "1", "symbol": "AAA", "timeframe": "d1", "delta_points": -30,
                "interval_end": end.isoformat(), "emergency_retrain_triggered": False, "in_cooldown": True}]
    assert emergency_retrain_confs([results]) == []  # inside the cooldown: nothing is triggered (one shard)
    results[0]["emergency_retrain_triggered"] = True
    assert emergency_retrain_confs([results, []])[0]["symbols"] == ["AAA"]


def test_a_drift_result_without_resolved_forecasts_fits_in_an_xcom():
    """Right after a new champion no forecast has resolved: NaN figures must not fail the task's XCom push."""
    import json

    from market_mlops.tasks.drift_check import xcom_safe

    result = xcom_safe({"model": "AAA-d1-direction", "band": "normal", "realized_accuracy": float("nan"),
                        "delta_points": float("inf"), "resolved": 0, "holdout_accuracy": 0.48,
                        "finance": {"ic": float("nan"), "turnover": 0.0}})  # the live finance metrics, nested
    assert json.loads(json.dumps(result, allow_nan=False)) == {
        "model": "AAA-d1-direction", "band": "normal", "realized_accuracy": None, "delta_points": None, "resolved": 0,
        "holdout_accuracy": 0.48, "finance": {"ic": None, "turnover": 0.0}}


def test_feature_drift_over_too_few_bars_is_not_enough_data_never_a_psi():
    """One bar after a cutoff used to read as PSI 6.3 (drifted): a sample that small says nothing."""
    from market_mlops.monitoring.drift import enough_for_feature_drift

    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"a": rng.normal(size=2000)})
    one_bar = pd.DataFrame({"a": [5.0]})
    assert feature_drift(reference, one_bar, Drift())[0].psi > 1  # what would have been reported
    reason = enough_for_feature_drift(one_bar, Drift())
    assert reason is not None and reason.startswith("not enough data: 1 recent bar(s)")
    assert enough_for_feature_drift(pd.DataFrame({"a": rng.normal(size=Drift().min_feature_bars)}), Drift()) is None


def test_psi_from_sorted_positions_equals_binning_every_value():
    """The fast PSI (edges and shares read off sorted samples) is the PSI of binning each value, ties included."""
    from market_mlops.monitoring.drift import psi

    def binned(reference, current, bins, eps=1e-4):
        edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
        ref = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1) / len(reference)
        cur = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1) / len(current)
        ref, cur = np.clip(ref, eps, None), np.clip(cur, eps, None)
        return float(np.sum((cur - ref) * np.log(cur / ref)))

    rng = np.random.default_rng(2)
    for case in range(60):
        reference, current = rng.normal(size=int(rng.integers(20, 2000))), rng.normal(0.2, 1.3, int(rng.integers(5, 200)))
        if case % 3 == 0:  # ties
            reference, current = np.round(reference, 1), np.round(current, 1)
        if case % 5 == 0:  # a point mass
            reference = np.where(rng.random(len(reference)) < 0.3, 0.0, reference)
        for bins in (2, 3, 10):
            assert psi(reference, current, bins) == pytest.approx(binned(reference, current, bins), abs=1e-9)


def test_the_null_thresholds_of_every_feature_at_once_equal_feature_by_feature():
    """A finite reference takes the array path; a feature with a NaN (or few distinct values) takes the loop: the
    thresholds are the same either way."""
    from market_mlops.monitoring.drift import psi_null_thresholds

    rng = np.random.default_rng(0)
    reference = pd.DataFrame(rng.normal(size=(1200, 12)), columns=[f"f{i}" for i in range(12)])
    reference["f3"], reference["f5"], reference["f7"] = np.round(reference["f3"]), (reference["f5"] > 0) * 1.0, 0.0
    for window in (30, 60):
        together = psi_null_thresholds(reference, window, 0.99)
        one_by_one = {}
        for column in reference.columns:  # a NaN row sends each feature down the loop
            one_by_one |= psi_null_thresholds(pd.concat([reference[[column]], pd.DataFrame({column: [np.nan]})]),
                                              window, 0.99)
        assert together == one_by_one


def test_a_stale_champion_and_a_missing_forecast_are_named_and_a_baseline_never_ages():
    from market_mlops.tasks.drift_check import staleness_findings

    start = dt.datetime(2025, 11, 14, 14, 30, tzinfo=dt.UTC)
    assert staleness_findings(30, False, 7, 60, start) == []
    old = staleness_findings(75, False, 7, 60, start)
    assert len(old) == 1 and old[0].startswith("its cutoff is 75 days old (drift.max_champion_age_days 60)")
    assert staleness_findings(400, True, 7, 60, start) == []  # a baseline has nothing to learn
    missing = staleness_findings(10, False, 0, 60, start)
    assert missing == ["no forecast for the session from 2025-11-14 14:30 UTC: its bars are missing or a feature "
                       "could not be computed (see the task log)"]


def test_data_is_stale_only_past_the_allowed_lag_and_only_when_sessions_were_missed():
    from market_mlops.tasks.ingestion import stale_data_message

    due = dt.datetime(2024, 12, 2, 21, tzinfo=dt.UTC)
    missed = [dt.date(2024, 11, 27), dt.date(2024, 11, 29), dt.date(2024, 12, 2)]
    friday = dt.datetime(2024, 11, 29, 18, tzinfo=dt.UTC)  # an early close, 3 days 3 hours before Monday's
    assert stale_data_message(friday, due, missed[-1:], 4) is None
    assert stale_data_message(friday, due, missed[-1:], 3) is not None
    assert stale_data_message(dt.datetime(2024, 11, 26, 21, tzinfo=dt.UTC), due, [], 3) is None
    message = stale_data_message(dt.datetime(2024, 11, 26, 21, tzinfo=dt.UTC), due, missed, 3)
    assert message is not None and "3 session(s) before this run's" in message
    assert "over 2024-11-27 .. 2024-12-02" in message and "history_start=2024-11-27" in message
