"""Ensemble weights fitted on out-of-fold probabilities: non-negative, summing to one, minimizing log-loss."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize


def blend(probas: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    mixed = sum(w * p for w, p in zip(weights, probas, strict=True))
    return mixed / mixed.sum(axis=1, keepdims=True)


def one_hot(classes: np.ndarray) -> np.ndarray:
    """A naive rule's class calls as probabilities (0.98 on the call): how every baseline is scored."""
    proba = np.full((len(classes), 3), 0.01)
    proba[np.arange(len(classes)), np.asarray(classes, dtype=int)] = 0.98
    return proba


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    eps = 1e-12
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y.astype(int)], eps, 1))))


def fit_weights(probas: list[np.ndarray], y: np.ndarray, min_rows: int = 30, prior: np.ndarray | None = None,
                prior_rows: float = 0.0) -> tuple[np.ndarray, str]:
    """Weights on the simplex minimizing log-loss; equal weights (or `prior`) when that is not possible.

    With `prior` (the weights in use), the fit is shrunk toward it: the objective adds
    (prior_rows / rows) * ||w - prior||^2 / 2, so a short window, where log-loss differences between blends are
    noise, barely moves the weights, and a long one follows the data (a window of pure noise used to swing the
    weights to a corner)."""
    k = len(probas)
    start = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, dtype=float) / np.sum(prior)
    fallback = "the current weights" if prior is not None else "equal"
    if len(y) < min_rows:
        return start, f"{fallback} (too few rows: {len(y)} < {min_rows})"
    strength = prior_rows / len(y) if prior is not None else 0.0

    def loss(w: np.ndarray) -> float:
        return log_loss(y, blend(probas, np.clip(w, 0, None) + 1e-12)) + 0.5 * strength * float(np.sum((w - start) ** 2))

    result = minimize(loss, start, method="SLSQP", bounds=[(0.0, 1.0)] * k,
                      constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0}])
    if not result.success or not np.all(np.isfinite(result.x)):
        return start, f"{fallback} (optimizer: {result.message})"
    weights = np.clip(result.x, 0, None)
    weights = weights / weights.sum()
    if loss(weights) > loss(start):
        return start, f"{fallback} (optimum not better than {fallback} weights)"
    if prior is not None:
        return np.round(weights, 6), f"min log-loss shrunk toward the current weights ({prior_rows:g} prior rows, {len(y)} rows)"
    return np.round(weights, 6), "min log-loss on out-of-fold probabilities"
