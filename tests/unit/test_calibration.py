"""Served probabilities: the baselines' tables, the calibration pool and the scores the gate reads."""

from __future__ import annotations

import numpy as np
import pytest

from market_mlops.model.baselines import PROBABILITY_FLOOR, BaselineTables, floor_probabilities
from market_mlops.model.calibration import Calibration, brier_rows, log_loss_rows, reliability_table


def test_baselines_count_with_a_prior_and_never_serve_zero_or_one():
    y = np.array([2, 2, 2, 2, 1, 2])
    known = np.array([np.nan, 2, 2, 2, 2, 1])
    tables = BaselineTables.fit(y, known)
    assert tables.climatology == pytest.approx([1 / 9, 2 / 9, 6 / 9])  # (0+1, 1+1, 5+1) / 9
    assert tables.persistence[2] == pytest.approx([1 / 7, 2 / 7, 4 / 7])  # after BULLISH: 3 x BULLISH, 1 x NEUTRAL
    proba = tables.all_probabilities(np.array([2.0, np.nan]), 2)
    assert proba["persistence"][1] == pytest.approx(proba["climatology"][1])  # no known label: climatology
    for p in proba.values():
        assert p.min() >= PROBABILITY_FLOOR and p.max() <= 1 - 2 * PROBABILITY_FLOOR
        assert p.sum(axis=1) == pytest.approx(1.0)
    assert BaselineTables.from_record(tables.record()).persistence == pytest.approx(tables.persistence, abs=1e-6)
    certain = floor_probabilities(np.array([[0.0, 0.0, 1.0]]))
    assert certain[0] == pytest.approx([0.01, 0.01, 0.98])


def _overconfident(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, a forecaster with the right direction but twice as sure as it should be, and a persistence table."""
    truth = rng.dirichlet([3, 3, 3], n)
    y = np.array([rng.choice(3, p=p) for p in truth])
    sharp = truth ** 2 / (truth ** 2).sum(axis=1, keepdims=True)
    persistence = np.full((n, 3), 1 / 3)
    return y, sharp, persistence


def test_the_pool_tempers_an_overconfident_forecaster_out_of_sample():
    rng = np.random.default_rng(0)
    y, sharp, persistence = _overconfident(rng, 4000)
    pool = Calibration.fit(y[:2000], sharp[:2000], persistence[:2000])
    assert 0.35 < pool.a < 0.65  # about the square root back
    later = slice(2000, None)
    calibrated = pool.apply(sharp[later], persistence[later])
    assert log_loss_rows(y[later], calibrated).mean() < log_loss_rows(y[later], sharp[later]).mean() - 0.02
    assert brier_rows(y[later], calibrated).mean() < brier_rows(y[later], sharp[later]).mean()
    again = Calibration.from_record(pool.record())  # as a version stores it: rounded to 6 decimals
    assert again.apply(sharp[later], persistence[later]) == pytest.approx(calibrated, abs=1e-5)


def test_a_useless_forecaster_is_pooled_away_and_persistence_kept():
    """Noise against labels that follow the last known label: the pool serves persistence's table, never worse than
    either baseline on its rows."""
    rng = np.random.default_rng(1)
    n = 3000
    known = rng.integers(0, 3, n).astype(float)
    y = np.where(rng.random(n) < 0.6, known, rng.integers(0, 3, n)).astype(int)
    tables = BaselineTables.fit(y, known)
    baselines = tables.all_probabilities(known, n)
    noise = rng.dirichlet([2, 2, 2], n)
    pool = Calibration.fit(y, noise, baselines["persistence"])
    served = pool.apply(noise, baselines["persistence"])
    assert pool.a < 0.1 and pool.b > 0.5
    for p in baselines.values():
        assert log_loss_rows(y, served).mean() <= log_loss_rows(y, p).mean() + 1e-3


def test_too_few_rows_serve_the_blend_floored():
    pool = Calibration.fit(np.array([0, 1, 2]), np.full((3, 3), 1 / 3), np.full((3, 3), 1 / 3))
    assert pool.method.startswith("none") and pool.apply(np.array([[1.0, 0, 0]]), None)[0] == pytest.approx(
        [0.98, 0.01, 0.01])


def test_a_calibrated_forecaster_reads_on_the_diagonal_of_its_reliability_table():
    rng = np.random.default_rng(2)
    truth = rng.dirichlet([2, 2, 2], 20000)
    y = np.array([rng.choice(3, p=p) for p in truth])
    table = reliability_table(y, truth)
    busy = table[table["forecasts"] >= 500]
    assert len(busy) >= 10
    assert (busy["mean_probability"] - busy["observed_frequency"]).abs().max() < 0.03
