"""The bands' change detectors (`monitoring.detector`): thresholds that give their designed run length, calls counted
as the outcomes they carry, "too few outcomes" until a band could fire, and on defaults the false alarms and
delays `make bench` prints (fewer champion-years here: the bench runs 438 of each)."""

from __future__ import annotations

import numpy as np
import pytest

from market_mlops.config import Drift
from market_mlops.dev.bench.learning_loop import GOALS, simulate_detector
from market_mlops.monitoring.detector import calls_per_outcome, cusum, detect, threshold_for


def test_a_threshold_gives_its_designed_run_length_on_independent_calls():
    """Brook and Evans' chain against 400 simulated runs: the mean run to a false alarm is within a fifth of the
    design (the grid rounds the statistic down a little: a little shorter, never twice as long)."""
    rng = np.random.default_rng(5)
    for reference, edge, design in ((0.45, -10.0, 250.0), (0.36, -15.0, 1000.0)):
        limit = threshold_for(reference, edge, design)
        runs = []
        for _ in range(400):
            path = cusum(rng.random(int(design * 12)) < reference, reference, edge, 1)
            fired = np.flatnonzero(path >= limit)
            runs.append(fired[0] + 1 if len(fired) else len(path))
        assert 0.8 * design <= np.mean(runs) <= 1.2 * design, (reference, edge, np.mean(runs))


def test_calls_that_share_outcomes_count_once():
    rng = np.random.default_rng(2)
    independent = rng.random(5_000) < 0.4
    assert calls_per_outcome(independent, 5) == pytest.approx(1.0, abs=0.15)  # calls that move bar to bar
    kept = np.repeat(rng.random(1_000) < 0.4, 5)  # a call kept for 5 bars on a 5-bar label: 5 calls, one outcome
    assert calls_per_outcome(kept, 5) == pytest.approx(5 * (1 - 4 / 10) + 4 / 10 * 1, rel=0.25)  # Bartlett over 10
    assert calls_per_outcome(independent[:20], 5) == 5.0  # too few calls to measure: the cautious count


def test_nothing_is_judged_until_the_drift_band_could_fire_and_a_collapse_is_an_emergency():
    cfg = Drift()
    few = detect(np.zeros(10, bool), 0.45, 500, 5, 1, cfg)  # 10 misses of 5-session labels: 2 outcomes
    assert few.band is None and few.describe().startswith(f"too few outcomes (2 of {few.needed:.0f})")
    collapse = detect(np.zeros(300, bool), 0.45, 500, 5, 1, cfg)
    assert collapse.band == "emergency" and all(d.alarm for d in collapse.detectors)
    steady = detect(np.random.default_rng(1).random(600) < 0.45, 0.45, 500, 1, 1, cfg)
    assert steady.band == "normal" and "held to 0.4" in steady.describe()  # the reference's lower bound


def test_a_reference_measured_on_few_rows_is_held_lower():
    from market_mlops.monitoring.detector import held_reference

    assert held_reference(0.45, 100, 5, 0.8) < held_reference(0.45, 100, 1, 0.8) < held_reference(0.45, 5_000, 1, 0.8)
    assert held_reference(0.45, 5_000, 1, 0.8) == pytest.approx(0.45 - 0.8416 * np.sqrt(0.45 * 0.55 / 5_000), abs=1e-4)


@pytest.mark.parametrize(("kind", "horizon"), [("model", 1), ("baseline", 5)])
def test_on_defaults_false_alarms_meet_their_goals_and_a_planted_drop_is_found(kind, horizon):
    """Champion-years of daily checks on random walks (`make bench` runs six walks of each): the share of checks in
    drift or emergency within the goals (slack for fewer draws), and a 20-point drop reaches emergency in almost
    every one within 280 sessions, a 10-point drop drift in most."""
    record = simulate_detector(kind, horizon, range(2), Drift())
    assert record.champions >= 140
    assert record.share("drift") <= GOALS["drift"] and record.share("emergency") <= 2 * GOALS["emergency"], (
        record.share("drift"), record.share("emergency"))
    assert record.found(20) >= 95 and record.found(10) >= 85, (record.found(20), record.found(10))
    assert record.delay(20) <= 110, record.delay(20)
