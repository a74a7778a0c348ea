"""Why a model called what it called: each feature's contribution to the called class of every forecast.

TreeSHAP as the boosters compute it natively (LightGBM's `pred_contrib`, its random forest included; XGBoost's
`pred_contribs`): per class, one value per feature plus a bias, in the booster's margin (raw score) space, summing
to that margin exactly. The ensemble blends the boosters' probabilities with its weights; its attribution is the
weighted sum of their margin contributions (`ensemble_contributions`), which says which features pushed the call
and how hard, on one scale across the three models. A forecast keeps its `TOP_DRIVERS` largest (by size, with
signs); a version keeps the mean absolute contribution of every feature over its holdout (what it leans on).
"""

from __future__ import annotations

from typing import Any

import numpy as np

TOP_DRIVERS = 5
ATTRIBUTIONS_FILE = "mean_abs_contributions.json"  # a run's explain/ file: what the version leans on (its holdout)


def booster_contributions(model: Any, X: np.ndarray, classes: int = 3) -> np.ndarray:
    """(rows, classes, features + 1): each feature's contribution to each class's margin, the bias last (a LightGBM
    booster up to its best iteration, an XGBoost booster up to its early-stopped one); zeros for a model that
    cannot say (a legacy scikit-learn forest)."""
    import xgboost as xgb

    rows, width = X.shape[0], X.shape[1] + 1
    if isinstance(model, xgb.Booster):
        best = model.attr("best_iteration")
        out = model.predict(xgb.DMatrix(X), pred_contribs=True,
                            iteration_range=(0, int(best) + 1) if best else (0, 0))
        return np.asarray(out, dtype=float).reshape(rows, classes, width)
    if hasattr(model, "predict_proba"):  # a legacy forest: no native attribution
        return np.zeros((rows, classes, width))
    out = model.predict(X, pred_contrib=True, num_iteration=model.best_iteration or None, num_threads=1)
    return np.asarray(out, dtype=float).reshape(rows, classes, width)


def booster_margins(model: Any, X: np.ndarray) -> np.ndarray:
    """(rows, classes): the margins the contributions add up to."""
    import xgboost as xgb

    if isinstance(model, xgb.Booster):
        best = model.attr("best_iteration")
        return np.asarray(model.predict(xgb.DMatrix(X), output_margin=True,
                                        iteration_range=(0, int(best) + 1) if best else (0, 0)), dtype=float)
    return np.asarray(model.predict(X, raw_score=True, num_iteration=model.best_iteration or None, num_threads=1),
                      dtype=float)


def ensemble_contributions(base: Any, X: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(rows, classes, features + 1): the base models' contributions weighted by the ensemble's weights."""
    w = np.asarray(weights if weights is not None else base.meta["weights"], dtype=float)
    models = {"rf": base.rf, "xgb": base.xgb, "lgbm": base.lgbm}
    return sum(weight * booster_contributions(models[name], X) for name, weight in zip(base.meta["order"], w,
                                                                                        strict=True))


def top_drivers(contributions: np.ndarray, features: list[str], k: int = TOP_DRIVERS) -> list[tuple[str, float]]:
    """The `k` features with the largest contributions by size (one row and class: features + 1 values, the bias
    last), signed, largest first."""
    values = contributions[:-1]
    order = np.argsort(-np.abs(values), kind="stable")[:k]
    return [(features[i], round(float(values[i]), 6)) for i in order]


def mean_abs_contributions(contributions: np.ndarray, called: np.ndarray, features: list[str]) -> dict[str, float]:
    """Per feature, the mean absolute contribution to the called class over rows (what a version leans on)."""
    rows = contributions[np.arange(len(called)), called, :-1]
    means = np.abs(rows).mean(axis=0) if len(rows) else np.zeros(len(features))
    return {f: round(float(m), 6) for f, m in zip(features, means, strict=True)}


def attribution_shift(live: dict[str, float], reference: dict[str, float], k: int = 3) -> list[tuple[str, float]]:
    """The features whose share of the total mean absolute contribution moved most between a version's holdout
    (`reference`) and its live forecasts: (feature, live share - reference share), largest move first."""
    names = sorted(set(live) | set(reference))
    live_total = sum(live.values()) or 1.0
    ref_total = sum(reference.values()) or 1.0
    moves = [(n, live.get(n, 0.0) / live_total - reference.get(n, 0.0) / ref_total) for n in names]
    return [(n, round(m, 4)) for n, m in sorted(moves, key=lambda nm: -abs(nm[1]))[:k]]
