"""Ensemble weights fitted on out-of-fold probabilities: non-negative, summing to one, minimizing log-loss."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize


def blend(probas: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    mixed = sum(w * p for w, p in zip(weights, probas, strict=True))
    return mixed / mixed.sum(axis=1, keepdims=True)


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    eps = 1e-12
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y.astype(int)], eps, 1))))


def fit_weights(probas: list[np.ndarray], y: np.ndarray, min_rows: int = 30) -> tuple[np.ndarray, str]:
    """Weights on the simplex minimizing out-of-fold log-loss; equal weights when that is not possible."""
    k = len(probas)
    equal = np.full(k, 1.0 / k)
    if len(y) < min_rows:
        return equal, "equal (too few out-of-fold rows)"

    def loss(w: np.ndarray) -> float:
        return log_loss(y, blend(probas, np.clip(w, 0, None) + 1e-12))

    result = minimize(loss, equal, method="SLSQP", bounds=[(0.0, 1.0)] * k,
                      constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0}])
    if not result.success or not np.all(np.isfinite(result.x)):
        return equal, f"equal (optimizer: {result.message})"
    weights = np.clip(result.x, 0, None)
    weights = weights / weights.sum()
    if loss(weights) > loss(equal):
        return equal, "equal (optimum not better than equal weights)"
    return np.round(weights, 6), "min log-loss on out-of-fold probabilities"
