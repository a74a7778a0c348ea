"""The bands' change detectors (`monitoring.detector`): thresholds that give their designed run length, calls counted
as the outcomes they carry, "too few outcomes" until a band could fire, and on defaults the false alarms and
delays `make bench` prints (fewer champion-years here: the bench runs 438 of each)."""

from __future__ import annotations

import numpy as np
import pytest

from market_mlops.config import Drift
from market_mlops.dev.bench.learning_loop import GOALS, simulate_detector
from market_mlops.monitoring.detector import band_path, calls_per_outcome, cusum, detect, threshold_for


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
    # Bartlett over 10 lags of rho_k = 1 - k/5: 1 + 2 (0.9 x 0.8 + 0.8 x 0.6 + 0.7 x 0.4 + 0.6 x 0.2) = 4.2
    assert calls_per_outcome(kept, 5) == pytest.approx(4.2, rel=0.1)
    # A short record leans on the cautious count (the horizon), and moves toward its estimate call by call.
    counts = [calls_per_outcome(independent[:n], 5) for n in (10, 20, 40, 80, 160)]
    assert 2.5 < counts[0] < 5 and counts == sorted(counts, reverse=True) and counts[-1] < 2


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


@pytest.mark.parametrize(("kind", "horizon", "found_10", "delay_20"), [("model", 1, 95, 80), ("baseline", 5, 70, 160)])
def test_on_defaults_false_alarms_meet_their_goals_and_a_planted_drop_is_found(kind, horizon, found_10, delay_20):
    """Champion-years of daily checks on random walks, each check reading the calls resolved by then as the drift
    check does (`make bench` runs six walks of each): the judged checks in drift or emergency within the goals
    (slack for fewer draws), a 20-point drop reaches emergency in almost every record within 280 sessions, a
    10-point drop drift in most (a baseline's overlapping calls carry fewer outcomes: fewer of them)."""
    record = simulate_detector(kind, horizon, range(2), Drift())
    assert record.champions >= 140 and record.unjudged() < 25
    assert record.share("drift") <= GOALS["drift"] and record.share("emergency") <= 2 * GOALS["emergency"], (
        record.share("drift"), record.share("emergency"))
    assert record.found(20) >= 95 and record.found(10) >= found_10, (record.found(20), record.found(10))
    assert record.delay(20) <= delay_20, record.delay(20)  # make bench: 55 and 120 sessions (its goals 20 and 80)


def test_a_check_reads_only_the_calls_resolved_by_then():
    """`band_path` is `detect` after each call: no later call changes an earlier check's band (the count of calls
    per outcome is measured on the calls so far)."""
    cfg = Drift()
    hits = np.random.default_rng(8).random(300) < 0.42
    whole = band_path(hits, 0.42, 500, 5, 1, cfg)
    cut = band_path(hits[:150], 0.42, 500, 5, 1, cfg)
    assert whole[:150] == cut
