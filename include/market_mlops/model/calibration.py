"""Served probabilities: the ensemble's blend calibrated out of fold and pooled with the persistence baseline.

The pool is log-linear (a logarithmic opinion pool, Genest and Zidek 1986, fitted as a stacking model, Wolpert
1992): p(k) is proportional to p_model(k)^a x p_persistence(k)^b x exp(c_k), five numbers fitted by minimum log-loss
on out-of-fold rows only (rows no base model learned). With b = 0 and c = 0 it is temperature scaling (Guo et al.
2017, a = 1 / T); a = 0 serves the persistence table, a = b = 0 climatology; so on the rows it is fitted on it is
never worse than either baseline, and a model that cannot learn what persistence knows still gets it. Five
parameters, not a matrix: a few hundred out-of-fold outcomes fit them without overfitting (a full multinomial
regression on the same inputs, 21 numbers, costs ~0.01 nats on new rows). scikit-learn's calibrators (sigmoid,
isotonic, temperature) calibrate one classifier and cannot take the baseline as an input; the fit is a small convex
problem solved with SciPy's L-BFGS-B.

Scores beside it: log-loss and the multi-class Brier score (both proper), and a reliability table per class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from market_mlops.model.baselines import N_CLASSES, PROBABILITY_FLOOR, floor_probabilities

BOUNDS = [(0.0, 3.0), (0.0, 2.0), (-5.0, 5.0), (-5.0, 5.0), (-5.0, 5.0)]  # a, b, c (c_0 is pinned by the others)
MIN_ROWS = 60  # fewer out-of-fold rows: the blend is served as it is, floored
RELIABILITY_BINS = 10


def log_loss_rows(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Each row's log-loss (nats), -ln p(observed class)."""
    return -np.log(np.clip(proba[np.arange(len(y)), np.asarray(y, dtype=int)], 1e-12, 1.0))


def brier_rows(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Each row's multi-class Brier score: sum over classes of (p - outcome)^2, 0 (certain and right) to 2."""
    outcome = np.eye(N_CLASSES)[np.asarray(y, dtype=int)]
    return np.sum((proba - outcome) ** 2, axis=1)


def _pool(params: np.ndarray, log_model: np.ndarray, log_persistence: np.ndarray) -> np.ndarray:
    logits = params[0] * log_model + params[1] * log_persistence + params[2:]
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Calibration:
    """The pool's parameters: model exponent `a`, persistence exponent `b`, class offsets `c`; `rows` it was fitted
    on (0: not fitted, the identity)."""

    a: float = 1.0
    b: float = 0.0
    c: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rows: int = 0
    method: str = "none"

    @classmethod
    def fit(cls, y: np.ndarray, model: np.ndarray, persistence: np.ndarray) -> Calibration:
        """Minimum log-loss pool of `model` and `persistence` probabilities for labels `y` (out-of-fold rows)."""
        from scipy.optimize import minimize

        y = np.asarray(y, dtype=int)
        if len(y) < MIN_ROWS or len(np.unique(y)) < N_CLASSES:
            return cls(rows=int(len(y)), method=f"none (too few out-of-fold rows: {len(y)} < {MIN_ROWS} or a class "
                                                 "missing)")
        log_model = np.log(np.clip(model, 1e-6, 1.0))
        log_persistence = np.log(np.clip(persistence, 1e-6, 1.0))
        onehot = np.eye(N_CLASSES)[y]

        def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            params = np.concatenate([theta[:2], [0.0], theta[2:]])
            p = _pool(params, log_model, log_persistence)
            loss = float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-300, 1.0))))
            residual = (p - onehot) / len(y)  # d loss / d logits
            grad = np.array([np.sum(residual * log_model), np.sum(residual * log_persistence),
                             *residual.sum(axis=0)[1:]])
            return loss, grad

        start = np.array([1.0, 0.0, 0.0, 0.0])
        result = minimize(loss_and_grad, start, jac=True, method="L-BFGS-B", bounds=[BOUNDS[0], BOUNDS[1],
                                                                                      BOUNDS[3], BOUNDS[4]])
        theta = result.x if result.success and np.all(np.isfinite(result.x)) else start
        return cls(float(theta[0]), float(theta[1]), (0.0, float(theta[2]), float(theta[3])), int(len(y)),
                   "log-linear pool of the blend and persistence, fitted on out-of-fold rows")

    def apply(self, model: np.ndarray, persistence: np.ndarray | None) -> np.ndarray:
        """Served probabilities: the pool (identity when not fitted), floored (`PROBABILITY_FLOOR`)."""
        if self.rows == 0 or self.method.startswith("none") or persistence is None:
            return floor_probabilities(model)
        params = np.array([self.a, self.b, *self.c])
        return floor_probabilities(_pool(params, np.log(np.clip(model, 1e-6, 1.0)),
                                         np.log(np.clip(persistence, 1e-6, 1.0))))

    def record(self) -> dict[str, Any]:
        return {"a": round(self.a, 6), "b": round(self.b, 6), "c": [round(v, 6) for v in self.c], "rows": self.rows,
                "method": self.method, "floor": PROBABILITY_FLOOR}

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> Calibration:
        if not record:
            return cls()
        c = record.get("c", [0.0, 0.0, 0.0])
        return cls(float(record["a"]), float(record["b"]), (float(c[0]), float(c[1]), float(c[2])),
                   int(record.get("rows", 0)), str(record.get("method", "")))


def reliability_table(y: np.ndarray, proba: np.ndarray, bins: int = RELIABILITY_BINS) -> pd.DataFrame:
    """Per class (one against the rest) and probability bin: forecasts, mean forecast probability and the observed
    frequency of the class: a calibrated forecaster's two agree within sampling error."""
    from market_mlops.model.labels import CLASSES

    y = np.asarray(y, dtype=int)
    rows = []
    edges = np.linspace(0.0, 1.0, bins + 1)
    for k, name in enumerate(CLASSES):
        p = proba[:, k]
        which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
        for b in range(bins):
            mask = which == b
            if mask.any():
                rows.append({"class": name, "bin_low": round(float(edges[b]), 2), "bin_high": round(float(edges[b + 1]), 2),
                             "forecasts": int(mask.sum()), "mean_probability": float(p[mask].mean()),
                             "observed_frequency": float((y[mask] == k).mean())})
    return pd.DataFrame(rows, columns=["class", "bin_low", "bin_high", "forecasts", "mean_probability",
                                       "observed_frequency"])


def calibration_error(table: pd.DataFrame) -> float:
    """Expected calibration error over the reliability table's cells: the forecast-weighted mean gap between mean
    probability and observed frequency (per class, averaged over the classes)."""
    if table.empty:
        return float("nan")
    gaps = (table["mean_probability"] - table["observed_frequency"]).abs() * table["forecasts"]
    return float(gaps.groupby(table["class"]).sum().div(table.groupby("class")["forecasts"].sum()).mean())


def probability_scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Log-loss, Brier score and expected calibration error of `proba` for labels `y`."""
    if not len(y):
        return {"log_loss": float("nan"), "brier": float("nan"), "calibration_error": float("nan")}
    return {"log_loss": float(log_loss_rows(y, proba).mean()), "brier": float(brier_rows(y, proba).mean()),
            "calibration_error": calibration_error(reliability_table(y, proba))}


__all__ = ["PROBABILITY_FLOOR", "Calibration", "brier_rows", "calibration_error", "log_loss_rows",
           "probability_scores", "reliability_table"]
