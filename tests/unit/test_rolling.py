"""The numpy trailing windows equal pandas' rolling and ewm results (what the features were written with), and a
value at bar t never depends on a later bar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market_mlops.model import rolling as r

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # flat windows divide by zero, as in pandas


def _series(kind: str) -> np.ndarray:
    rng = np.random.default_rng(3)
    x = rng.normal(0.0005, 0.01, 600)
    if kind == "prices":
        x = 150 * np.exp(np.cumsum(x))  # large level, small moves: the sums of squares need the shift
    elif kind == "leading nan":
        x[:7] = np.nan
    elif kind == "holes":
        x[[50, 51, 300]] = np.nan
    elif kind == "flat stretch":
        x[100:160] = 0.25
    return x


KINDS = ["returns", "prices", "leading nan", "holes", "flat stretch"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [5, 20, 60])
def test_moments_equal_pandas(kind, n):
    x = _series(kind)
    s, sums = pd.Series(x), r.Trailing(x)
    np.testing.assert_allclose(sums.sum(n), s.rolling(n).sum(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sums.mean(n), s.rolling(n).mean(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sums.std(n), s.rolling(n).std(), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(sums.var(n), s.rolling(n).var(), rtol=1e-6, atol=1e-14)
    # Higher moments from running sums keep their digits on returns (what the features ask them of), not on a price
    # level far from its first value; pandas' skew/kurt of a flat window is rounding noise, ours NaN.
    if kind not in ("prices", "flat stretch"):
        np.testing.assert_allclose(sums.skew(n), s.rolling(n).skew(), rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(sums.kurt(n), s.rolling(n).kurt(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", KINDS)
def test_covariance_and_correlation_equal_pandas(kind):
    x, y = _series(kind), _series("returns")[::-1].copy()
    a, b = r.Trailing(x), r.Trailing(y)
    for n in (20, 60):
        np.testing.assert_allclose(a.cov(b, n), pd.Series(x).rolling(n).cov(pd.Series(y)), rtol=1e-6, atol=1e-14)
        np.testing.assert_allclose(a.corr(b, n), pd.Series(x).rolling(n).corr(pd.Series(y)), rtol=1e-6, atol=1e-9)
    flat = r.rolling_corr(np.ones(100), y[:100], 20)
    assert np.isnan(flat).all()  # a constant side has no correlation


@pytest.mark.parametrize("kind", ["returns", "leading nan", "holes"])
def test_ewm_equals_pandas(kind):
    x = _series(kind)
    for halflife in (2, 5):
        np.testing.assert_allclose(r.ewm_mean(x, halflife, halflife),
                                   pd.Series(x).ewm(halflife=halflife, min_periods=halflife).mean(), rtol=1e-9)


def test_a_value_never_depends_on_a_later_bar():
    x = _series("prices")
    changed = x.copy()
    changed[400:] *= 3.0
    a, b = r.Trailing(x), r.Trailing(changed)
    for stat in ("mean", "std", "skew", "kurt"):
        assert np.array_equal(getattr(a, stat)(20)[:400], getattr(b, stat)(20)[:400], equal_nan=True), stat
    assert not np.allclose(a.mean(20)[420:], b.mean(20)[420:])
