"""Direction labels: the forward return over `horizon` bars against a flat band around zero.

The band scales with the series' own volatility (`band: volatility`): k times the standard deviation of the
`horizon`-bar log returns over the last `window` bars, all of them ending at or before the labelled bar. A fixed
threshold (`band: fixed`) makes most hourly FX labels "flat" and lets the class mix drift with volatility; a band
of k = 0.43 standard deviations leaves about a third of normal returns inside it. Because the band at bar t reads
only bars <= t and the label reads the close `horizon` bars later, a label never changes when later bars arrive.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from market_mlops.config import LabelSpec

CLASSES = ["BEARISH", "NEUTRAL", "BULLISH"]  # encoded 0, 1, 2


def forward_return(close: pd.Series, horizon: int) -> pd.Series:
    return close.shift(-horizon) / close - 1.0


def flat_band(close: pd.Series, horizon: int, spec: LabelSpec) -> pd.Series:
    """The half-width of the NEUTRAL band at each bar, as a fractional return (NaN until `window` bars are known)."""
    if spec.band == "fixed":
        return pd.Series(spec.threshold, index=close.index, dtype=float)
    past = np.log(close.astype(float)).diff(horizon)  # the horizon-bar return that ended at each bar
    sd = past.rolling(spec.window, min_periods=spec.window).std()
    return np.expm1(spec.k * sd)


def direction_labels(close: pd.Series, horizon: int, spec: LabelSpec) -> pd.Series:
    """0 = BEARISH, 1 = NEUTRAL, 2 = BULLISH; NaN for the last `horizon` bars (their future is unknown) and for bars
    whose band is not known yet."""
    fwd = forward_return(close, horizon)
    band = flat_band(close, horizon, spec)
    labels = np.where(fwd > band, 2.0, np.where(fwd < -band, 0.0, 1.0))
    return pd.Series(np.where(fwd.isna() | band.isna(), np.nan, labels), index=close.index)


def labels_and_usable_rows(features: pd.DataFrame, close: pd.Series, columns: list[str], horizon: int,
                           spec: LabelSpec) -> tuple[pd.Series, pd.Series]:
    """Direction labels, and the rows a model can learn from or be scored on: every feature known, label resolved."""
    labels = direction_labels(close, horizon, spec)
    return labels, features[columns].notna().all(axis=1) & labels.notna()


def class_shares(y: np.ndarray) -> dict[str, float]:
    """{class: share} of encoded labels."""
    counts = np.bincount(np.asarray(y, dtype=int), minlength=len(CLASSES))
    total = max(int(counts.sum()), 1)
    return {name.lower(): round(float(c) / total, 4) for name, c in zip(CLASSES, counts, strict=True)}


def label_record(spec: LabelSpec) -> dict[str, Any]:
    """The label settings as a version records them (its meta, its run's params): resolution reads them back."""
    return spec.model_dump()


def spec_of_record(record: dict[str, Any] | None, fallback: LabelSpec) -> LabelSpec:
    """The label settings a version was trained with; `fallback` for a version from before they were recorded
    (those used a fixed threshold)."""
    if not record:
        return LabelSpec(band="fixed", threshold=fallback.threshold)
    return LabelSpec.model_validate(record)
