"""The weekly refresh's weights: shrunk toward the current ones, so a short window of noise cannot swing them to a
corner, while a window where one base model is clearly better still moves them."""

from __future__ import annotations

import numpy as np
import pytest

from market_mlops.model.ensemble import fit_weights

CURRENT = np.array([0.2, 0.5, 0.3])


def _noise(rows: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.dirichlet([2, 2, 2], rows) for _ in range(3)], rng.integers(0, 3, rows)


@pytest.mark.parametrize("seed", range(5))
def test_on_a_window_of_noise_the_refreshed_weights_stay_near_the_current_ones(seed):
    probas, y = _noise(150, seed)
    shrunk, method = fit_weights(probas, y, prior=CURRENT, prior_rows=250)
    assert np.abs(shrunk - CURRENT).sum() < 0.15, (shrunk, method)
    assert "shrunk toward the current weights" in method


def test_without_shrinkage_noise_moves_the_weights_a_lot():
    """What the shrinkage prevents (the test above could fail): the unpenalized fit on the same noise."""
    moves = [np.abs(fit_weights(*_noise(150, seed), prior=CURRENT, prior_rows=0)[0] - CURRENT).sum() for seed in range(5)]
    assert max(moves) > 0.4


def test_a_clearly_better_model_still_gains_weight_and_more_so_on_a_longer_window():
    rng = np.random.default_rng(7)
    rows = 2000
    y = rng.integers(0, 3, rows)
    good = np.full((rows, 3), 0.15)
    good[np.arange(rows), y] = 0.7
    probas = [rng.dirichlet([2, 2, 2], rows), good, rng.dirichlet([2, 2, 2], rows)]
    short, _ = fit_weights([p[:150] for p in probas], y[:150], prior=CURRENT, prior_rows=250)
    long, _ = fit_weights(probas, y, prior=CURRENT, prior_rows=250)
    assert short[1] > CURRENT[1] + 0.05 and long[1] > short[1]


def test_too_few_rows_keep_the_current_weights():
    probas, y = _noise(40, 1)
    weights, method = fit_weights(probas, y, min_rows=100, prior=CURRENT, prior_rows=250)
    assert np.array_equal(weights, CURRENT) and "too few rows: 40 < 100" in method
