"""Trailing-window statistics on numpy arrays, equal to pandas' `rolling(n)` / `ewm` results (min_periods = n).

pandas pays ~0.2 ms of bookkeeping per call whatever the length; the features make ~100 such calls per series, which
was most of their cost. These kernels work on running sums (`cumsum`), so a value at bar t depends only on bars <= t
(the same causality as pandas: the sums up to t never see a later bar). A window holding a NaN gives NaN, as pandas
does with its default `min_periods`. Moments are taken about the series' first finite value (a causal shift) so that
prices and volumes keep their precision in the sums of squares. `Trailing` keeps a series' running sums for every
window length asked of it; the functions below are one-off shortcuts. A flat window or a zero divisor gives NaN or inf
and numpy's warning: callers that expect them (the features) silence the warning once around all their calls, which
costs far less than doing it in every kernel.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray


class Trailing:
    """Running sums of one series, shared by every window length asked of it: a cumulative sum is the costly step
    (sequential, ~6 ns a bar here), a window of any length is then one subtraction."""

    def __init__(self, x: Array) -> None:
        x = np.asarray(x, dtype=float)
        finite = np.isfinite(x)
        self.shift = float(x[finite][0]) if finite.any() else 0.0
        # NaN only before the first finite value (a return's first bar, an indicator's warm-up) is the common case:
        # a window is then NaN up to a known row, no mask needed.
        self.lead = int(np.argmax(finite)) if finite.any() else len(x)
        self._bad = None if finite[self.lead:].all() else np.cumsum(~finite)
        self.centred = x - self.shift if self.lead == 0 and self._bad is None else np.where(finite, x - self.shift, 0.0)
        self._cums: dict[object, Array] = {}
        self._holes: dict[int, Array] = {}

    def _power(self, power: int) -> Array:
        """Running sum of the shifted series to `power` (computed once)."""
        if power not in self._cums:
            self._cums[power] = np.cumsum(self.centred if power == 1 else self.centred**power)
        return self._cums[power]

    def _product(self, other: Trailing) -> Array:
        """Running sum of the product of the two shifted series (computed once per pair)."""
        if other not in self._cums:
            self._cums[other] = np.cumsum(self.centred * other.centred)
        return self._cums[other]

    @staticmethod
    def _window(totals: Array, n: int) -> Array:
        out = np.empty(len(totals))
        out[: n - 1] = np.nan
        if len(totals) >= n:
            out[n - 1] = totals[n - 1]
            out[n:] = totals[n:] - totals[:-n]
        return out

    def holes(self, n: int) -> Array | None:
        """The windows of n that held a NaN after the leading ones (None when there is none)."""
        if self._bad is None:
            return None
        if n not in self._holes:
            self._holes[n] = self._window(self._bad.astype(float), n) != 0
        return self._holes[n]

    def _mask(self, values: Array, n: int, other: Trailing | None = None) -> Array:
        """NaN where the window held a NaN of this series (or of `other`)."""
        for series in (self, other):
            if series is None:
                continue
            values[: series.lead + n - 1] = np.nan
            holes = series.holes(n)
            if holes is not None:
                values = np.where(holes, np.nan, values)
        return values

    def _means(self, n: int, powers: int) -> list[Array]:
        return [self._window(self._power(p), n) / n for p in range(1, powers + 1)]

    def sum(self, n: int) -> Array:
        return self._mask(self._window(self._power(1), n) + n * self.shift, n)

    def mean(self, n: int) -> Array:
        return self.sum(n) / n

    def var(self, n: int) -> Array:
        """Sample variance (ddof 1), as pandas."""
        m1, m2 = self._means(n, 2)
        var = m2 - m1 * m1
        flat = var <= 1e-12 * m2  # rounding of a constant window: exactly 0, as pandas (ratios of it become NaN)
        return self._mask(np.where(flat, 0.0, var) * (n / (n - 1)), n)

    def std(self, n: int) -> Array:
        return np.sqrt(self.var(n))

    def skew(self, n: int) -> Array:
        """Bias-corrected sample skewness, pandas' formula; NaN on a flat window. For returns: third powers of a
        series that wanders far from its first value (a price level) lose digits in the running sums."""
        m1, m2, m3 = self._means(n, 3)
        var = m2 - m1 * m1
        third = m3 - m1**3 - 3 * m1 * var
        skew = np.sqrt(n * (n - 1.0)) * third / ((n - 2) * var**1.5)
        return self._mask(np.where(var <= 1e-14, np.nan, skew), n)

    def kurt(self, n: int) -> Array:
        """Bias-corrected excess kurtosis, pandas' formula; NaN on a flat window. For returns, as `skew`."""
        m1, m2, m3, m4 = self._means(n, 4)
        var = m2 - m1 * m1
        third = m3 - m1**3 - 3 * m1 * var
        fourth = m4 - m1**4 - 6 * var * m1 * m1 - 4 * third * m1
        kurt = ((n * n - 1.0) * fourth / (var * var) - 3.0 * (n - 1.0) ** 2) / ((n - 2.0) * (n - 3.0))
        return self._mask(np.where(var <= 1e-14, np.nan, kurt), n)

    def _co_moments(self, other: Trailing, n: int) -> tuple[Array, Array, Array]:
        product = self._product(other)
        mean_a, mean_b = self._window(self._power(1), n) / n, self._window(other._power(1), n) / n
        return mean_a, mean_b, self._window(product, n) / n - mean_a * mean_b

    def cov(self, other: Trailing, n: int) -> Array:
        """Sample covariance (ddof 1) with another series, as pandas."""
        _, _, cov = self._co_moments(other, n)
        return self._mask(cov * (n / (n - 1)), n, other)

    def corr(self, other: Trailing, n: int) -> Array:
        """Pearson correlation with another series; NaN where either side is constant over the window."""
        mean_a, mean_b, cov = self._co_moments(other, n)
        sq_a, sq_b = self._window(self._power(2), n) / n, self._window(other._power(2), n) / n
        var_a, var_b = sq_a - mean_a**2, sq_b - mean_b**2
        corr = np.clip(cov / np.sqrt(var_a * var_b), -1.0, 1.0)
        flat = (var_a <= 1e-14 * np.maximum(sq_a, 1e-300)) | (var_b <= 1e-14 * np.maximum(sq_b, 1e-300))
        return self._mask(np.where(flat, np.nan, corr), n, other)


def rolling_sum(x: Array, n: int) -> Array:
    return Trailing(x).sum(n)


def rolling_mean(x: Array, n: int) -> Array:
    return Trailing(x).mean(n)


def rolling_std(x: Array, n: int) -> Array:
    return Trailing(x).std(n)


def rolling_corr(x: Array, y: Array, n: int) -> Array:
    return Trailing(x).corr(Trailing(y), n)


def ewm_mean(x: Array, halflife: float, min_periods: int) -> Array:
    """pandas' `ewm(halflife=..., min_periods=...).mean()` (adjust=True, NaN observations skipped, weights by
    position)."""
    from scipy.signal import lfilter

    x = np.asarray(x, dtype=float)
    seen = np.isfinite(x)
    decay = 0.5 ** (1.0 / halflife)
    numerator = lfilter([1.0], [1.0, -decay], np.where(seen, x, 0.0))
    denominator = lfilter([1.0], [1.0, -decay], seen.astype(float))
    mean = numerator / denominator
    return np.where(np.cumsum(seen) >= min_periods, mean, np.nan)


def shift(x: Array, k: int) -> Array:
    """x moved k bars later (k >= 0), NaN in front."""
    out = np.full(len(x), np.nan)
    out[k:] = x[: len(x) - k] if k else x
    return out


def diff(x: Array, k: int = 1) -> Array:
    return np.asarray(x, dtype=float) - shift(np.asarray(x, dtype=float), k)


def pct_change(x: Array) -> Array:
    return np.asarray(x, dtype=float) / shift(np.asarray(x, dtype=float), 1) - 1.0
