"""Direction labels: the forward return over `horizon` bars against the timeframe's threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd

CLASSES = ["BEARISH", "NEUTRAL", "BULLISH"]  # encoded 0, 1, 2


def forward_return(close: pd.Series, horizon: int) -> pd.Series:
    return close.shift(-horizon) / close - 1.0


def direction_labels(close: pd.Series, horizon: int, threshold: float) -> pd.Series:
    """0 = BEARISH, 1 = NEUTRAL, 2 = BULLISH; NaN for the last `horizon` bars (their future is unknown)."""
    fwd = forward_return(close, horizon)
    labels = np.where(fwd > threshold, 2.0, np.where(fwd < -threshold, 0.0, 1.0))
    return pd.Series(np.where(fwd.isna(), np.nan, labels), index=close.index)


def labels_and_usable_rows(features: pd.DataFrame, close: pd.Series, columns: list[str], horizon: int,
                           threshold: float) -> tuple[pd.Series, pd.Series]:
    """Direction labels, and the rows a model can learn from or be scored on: every feature known, label resolved."""
    labels = direction_labels(close, horizon, threshold)
    return labels, features[columns].notna().all(axis=1) & labels.notna()
