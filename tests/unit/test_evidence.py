"""The betting e-process of `model.evidence`, checked the way a statistician would: by simulation under the null
(no difference in expected score, labels that overlap like a 5-session label) and under a planted edge.

Each null check draws 2,000 series; with a true rejection rate at the nominal alpha the observed rate's standard
error is sqrt(alpha (1 - alpha) / 2000) (0.49 points at 5 %); the tests allow the nominal rate plus three of them.
"""

from __future__ import annotations

import numpy as np
import pytest

from market_mlops.model.evidence import compare, log_loss_differences, sequential_e_value

DRAWS = 2000
ALPHA = 0.05


def _labels(rng: np.random.Generator, n: int, horizon: int) -> np.ndarray:
    """Direction labels of overlapping `horizon`-bar sums of symmetric fat-tailed returns (a third neutral)."""
    steps = rng.standard_t(5, n + horizon)
    ahead = np.convolve(steps, np.ones(horizon), "valid")[1:n + 1]
    band = 0.43 * np.sqrt(horizon * 5 / 3)
    return np.where(ahead > band, 2, np.where(ahead < -band, 0, 1))


def _mirrored(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two forecasters with the same expected log score on symmetric labels: b is a with BEARISH and BULLISH swapped."""
    a = rng.dirichlet([4, 4, 4], n)
    return a, a[:, ::-1]


def _null_rate(horizon: int, sequential: bool, n: int = 300, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    rejected = 0
    for _ in range(DRAWS):
        y = _labels(rng, n, horizon)
        a, b = _mirrored(rng, n)
        d, low, high = log_loss_differences(y, a, b)
        rejected += compare(d, low, high, horizon, ALPHA, sequential=sequential, interval=False).proven
    return rejected / DRAWS


@pytest.mark.parametrize("horizon", [1, 5])
def test_a_batch_read_once_rejects_no_difference_at_most_at_its_level(horizon):
    limit = ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / DRAWS)
    assert _null_rate(horizon, sequential=False) <= limit


@pytest.mark.parametrize("horizon", [1, 5])
def test_a_live_record_read_after_every_outcome_rejects_no_difference_at_most_at_its_level(horizon):
    """The largest wealth over the whole path (a check after every session) is what is compared: Ville's inequality."""
    limit = ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / DRAWS)
    assert _null_rate(horizon, sequential=True, n=600, seed=1) <= limit


def test_reading_a_plain_mean_test_after_every_outcome_would_not_hold_its_level():
    """Why an e-process: the same data read after every outcome with a fixed-sample z-test rejects far more often."""
    from scipy.stats import norm

    rng = np.random.default_rng(2)
    z = norm.ppf(1 - ALPHA)
    rejected = 0
    for _ in range(500):
        y = _labels(rng, 600, 1)
        a, b = _mirrored(rng, 600)
        d = log_loss_differences(y, a, b)[0]
        n = np.arange(1, 601)
        means = np.cumsum(d) / n
        sds = np.sqrt(np.maximum(np.cumsum(d ** 2) / n - means ** 2, 1e-12))
        rejected += bool(np.any(means[20:] / (sds[20:] / np.sqrt(n[20:])) > z))
    assert rejected / 500 > 2 * ALPHA


def test_a_planted_edge_is_proven_and_its_interval_covers_it():
    """A forecaster that knows part of the next return beats climatology by ~0.05 nats: proven at 1/240 on 400 rows,
    with an interval around the measured mean."""
    rng = np.random.default_rng(3)
    n = 400
    hint = rng.standard_normal(n + 1)
    steps = 0.5 * hint + np.sqrt(0.75) * rng.standard_t(5, n + 1) / np.sqrt(5 / 3)
    y = np.where(steps[1:] > 0.43, 2, np.where(steps[1:] < -0.43, 0, 1))
    from scipy.stats import norm

    m, sd = 0.5 * hint[1:], np.sqrt(0.75)
    informed = np.column_stack([norm.cdf((-0.43 - m) / sd), norm.cdf((0.43 - m) / sd) - norm.cdf((-0.43 - m) / sd),
                                1 - norm.cdf((0.43 - m) / sd)])
    climatology = np.tile(np.bincount(y, minlength=3) / n, (n, 1))
    d, low, high = log_loss_differences(y, informed, climatology)
    evidence = compare(d, low, high, 1, 1 / 240)
    assert evidence.proven and evidence.mean > 0.04
    assert evidence.low < evidence.mean < evidence.high and evidence.low > 0


def test_identical_forecasts_prove_nothing_and_no_rows_prove_nothing():
    y = np.array([0, 1, 2, 1])
    same = np.full((4, 3), 1 / 3)
    d, low, high = log_loss_differences(y, same, same)
    assert compare(d, low, high, 1, 0.05).e_value == pytest.approx(1.0)
    empty = compare(np.zeros(0), np.zeros(0), np.zeros(0), 1, 0.05)
    assert empty.e_value == 1.0 and not empty.proven and empty.outcomes == 0
    assert sequential_e_value(np.zeros(0), np.zeros(0), 5) == 1.0
