"""Base models (RandomForest, XGBoost, LightGBM), seeded and class-weighted, and the walk-forward training loop.

Boosters stop early on an inner validation split: the last part of each training window, separated from the rest
by `horizon` rows so no label of the fit rows looks into it. Ensemble weights come from out-of-fold
probabilities only; the holdout is scored once, by models that never saw it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from market_mlops.config import Training
from market_mlops.model.ensemble import blend, fit_weights
from market_mlops.model.evaluation import classification_metrics
from market_mlops.model.walk_forward import walk_forward_splits

log = logging.getLogger(__name__)
BASE_MODELS = ("rf", "xgb", "lgbm")
N_CLASSES = 3


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Square-root inverse class frequency: rare classes count more without giving up accuracy wholesale."""
    counts = np.bincount(y.astype(int), minlength=N_CLASSES).astype(float)
    per_class = np.sqrt(len(y) / (N_CLASSES * np.maximum(counts, 1)))
    return per_class[y.astype(int)]


def _inner_split(n: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    cut = int(n * 0.85)
    return np.arange(0, max(cut - horizon, 1)), np.arange(cut, n)


def default_params(cfg: Training) -> dict[str, dict[str, Any]]:
    return {
        "rf": {"n_estimators": cfg.rf_estimators, "max_depth": 8, "min_samples_leaf": 20, "max_features": "sqrt"},
        "xgb": {"n_estimators": cfg.boost_rounds, "max_depth": 3, "learning_rate": 0.05, "subsample": 0.8,
                "colsample_bytree": 0.6, "min_child_weight": 5},
        "lgbm": {"n_estimators": cfg.boost_rounds, "num_leaves": 15, "learning_rate": 0.05, "subsample": 0.8,
                 "subsample_freq": 1, "colsample_bytree": 0.6, "min_child_samples": 20},
    }


def threads_per_fit(cores: int, fits_at_once: int) -> int:
    """Threads for one fit so that every fit running at once on a worker fits in its cores: OpenMP boosters given
    more threads than cores spin and slow down (seen: 5x per symbol with a second job on a 2-core machine)."""
    return max(1, cores // max(1, fits_at_once))


def worker_cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def fit_threads(cfg: Training) -> int:
    """`threads_per_fit` for this worker: its cores, and the fits it runs at once (`training.fits_per_worker`, else
    the training pool's slots capped by the Celery worker's concurrency)."""
    import os

    at_once = cfg.fits_per_worker or cfg.pool_slots
    if cfg.fits_per_worker is None and os.environ.get("AIRFLOW__CELERY__WORKER_CONCURRENCY", "").isdigit():
        at_once = min(at_once, int(os.environ["AIRFLOW__CELERY__WORKER_CONCURRENCY"]))
    return threads_per_fit(worker_cores(), at_once)


def fit_base_model(name: str, X: np.ndarray, y: np.ndarray, params: dict[str, Any], seed: int, horizon: int,
                   threads: int = 1) -> Any:
    if len(np.unique(y)) < N_CLASSES:
        raise ValueError(f"training window holds only classes {sorted(np.unique(y).astype(int))}; widen the history "
                         "or lower the label threshold")
    weights = balanced_weights(y)
    if name == "rf":
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(**params, random_state=seed, n_jobs=threads)
        model.fit(X, y, sample_weight=weights)
        # Threaded predict_proba adds tree outputs in arbitrary order: predict on one thread so floats repeat.
        return model.set_params(n_jobs=1)
    fit_idx, val_idx = _inner_split(len(y), horizon)
    if name == "xgb":
        from xgboost import XGBClassifier

        model = XGBClassifier(**params, objective="multi:softprob", eval_metric="mlogloss", early_stopping_rounds=30,
                              random_state=seed, n_jobs=threads, tree_method="hist")
        return model.fit(X[fit_idx], y[fit_idx], sample_weight=weights[fit_idx],
                         eval_set=[(X[val_idx], y[val_idx])], sample_weight_eval_set=[weights[val_idx]], verbose=False)
    if name == "lgbm":
        import lightgbm as lgb

        model = lgb.LGBMClassifier(**params, objective="multiclass", random_state=seed, n_jobs=threads, verbose=-1,
                                   deterministic=True, force_row_wise=True)
        return model.fit(X[fit_idx], y[fit_idx], sample_weight=weights[fit_idx],
                         eval_X=(X[val_idx],), eval_y=(y[val_idx],), eval_sample_weight=[weights[val_idx]],
                         callbacks=[lgb.early_stopping(30, verbose=False)])
    raise ValueError(f"unknown base model {name!r}")


def predict_proba(model: Any, X: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict_proba(X), dtype=float)


def search_params(name: str, X: np.ndarray, y: np.ndarray, base: dict[str, Any], cfg: Training, horizon: int) -> dict[str, Any]:
    """Optional Optuna search on the inner validation log-loss, bounded by trial count and time."""
    if cfg.search_trials <= 0 or name == "rf":
        return base
    import optuna

    from market_mlops.model.ensemble import log_loss

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fit_idx, val_idx = _inner_split(len(y), horizon)

    def objective(trial: optuna.Trial) -> float:
        params = dict(base, learning_rate=trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
                      colsample_bytree=trial.suggest_float("colsample_bytree", 0.3, 1.0))
        if name == "xgb":
            params["max_depth"] = trial.suggest_int("max_depth", 2, 6)
        else:
            params["num_leaves"] = trial.suggest_int("num_leaves", 7, 63)
        model = fit_base_model(name, X[fit_idx], y[fit_idx], params, cfg.seed, horizon, fit_threads(cfg))
        return log_loss(y[val_idx], predict_proba(model, X[val_idx]))

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=cfg.seed))
    study.optimize(objective, n_trials=cfg.search_trials, timeout=cfg.search_timeout_s)
    return {**base, **study.best_params}


@dataclass
class TrainedEnsemble:
    models: dict[str, Any]
    weights: np.ndarray
    weights_method: str
    params: dict[str, dict[str, Any]]
    feature_names: list[str]
    fold_table: pd.DataFrame
    holdout_index: np.ndarray
    holdout_proba: np.ndarray
    holdout_base_proba: dict[str, np.ndarray]
    train_index: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    oof_accuracy: float = float("nan")  # the weighted ensemble on the walk-forward folds' test rows
    oof_rows: int = 0


def train_ensemble(X: pd.DataFrame, y: np.ndarray, cfg: Training, horizon: int) -> TrainedEnsemble:
    """Walk-forward folds for out-of-fold probabilities and weights, then final base models scored on the holdout."""
    names = list(X.columns)
    Xv = X.to_numpy(dtype=np.float32)
    folds, holdout = walk_forward_splits(len(y), cfg.folds, horizon, cfg.embargo_bars, cfg.holdout_fraction, cfg.min_train_rows)
    params = default_params(cfg)
    timings: dict[str, float] = {m: 0.0 for m in BASE_MODELS}
    if cfg.search_trials > 0:
        first_train = folds[-1].train
        params = {m: search_params(m, Xv[first_train], y[first_train], params[m], cfg, horizon) for m in BASE_MODELS}

    oof_idx: list[np.ndarray] = []
    oof_proba: dict[str, list[np.ndarray]] = {m: [] for m in BASE_MODELS}
    rows: list[dict[str, Any]] = []
    for split in folds:
        fold_probas = {}
        for m in BASE_MODELS:
            started = time.perf_counter()
            model = fit_base_model(m, Xv[split.train], y[split.train], params[m], cfg.seed, horizon, fit_threads(cfg))
            fold_probas[m] = predict_proba(model, Xv[split.test])
            timings[m] += time.perf_counter() - started
            oof_proba[m].append(fold_probas[m])
        oof_idx.append(split.test)
        equal = blend([fold_probas[m] for m in BASE_MODELS], np.full(len(BASE_MODELS), 1 / len(BASE_MODELS)))
        metrics = classification_metrics(y[split.test], equal)
        rows.append({"fold": split.name, "train_rows": len(split.train), "test_rows": len(split.test),
                     "train_end": int(split.train[-1]), "test_start": int(split.test[0]), "test_end": int(split.test[-1]),
                     **{f"{m}_accuracy": classification_metrics(y[split.test], fold_probas[m])["accuracy"] for m in BASE_MODELS},
                     "ensemble_equal_accuracy": metrics["accuracy"], "ensemble_equal_log_loss": metrics["log_loss"]})
    oof_y = y[np.concatenate(oof_idx)]
    weights, method = fit_weights([np.vstack(oof_proba[m]) for m in BASE_MODELS], oof_y)
    oof_pred = blend([np.vstack(oof_proba[m]) for m in BASE_MODELS], weights).argmax(axis=1)
    log.info("ensemble weights %s (%s) from %d out-of-fold rows", dict(zip(BASE_MODELS, weights.round(3), strict=True)), method, len(oof_y))

    models, holdout_base = {}, {}
    for m in BASE_MODELS:
        started = time.perf_counter()
        models[m] = fit_base_model(m, Xv[holdout.train], y[holdout.train], params[m], cfg.seed, horizon, fit_threads(cfg))
        holdout_base[m] = predict_proba(models[m], Xv[holdout.test])
        timings[m] += time.perf_counter() - started
    holdout_proba = blend([holdout_base[m] for m in BASE_MODELS], weights)
    return TrainedEnsemble(models=models, weights=weights, weights_method=method, params=params, feature_names=names,
                           fold_table=pd.DataFrame(rows), holdout_index=holdout.test, holdout_proba=holdout_proba,
                           holdout_base_proba=holdout_base, train_index=holdout.train, timings=timings,
                           oof_accuracy=float((oof_pred == oof_y).mean()), oof_rows=int(len(oof_y)))


def reference_accuracy(oof_accuracy: float, oof_rows: int, holdout_accuracy: float, holdout_rows: int) -> float:
    """The accuracy live forecasts are held to: every out-of-sample row pooled (walk-forward folds and holdout). The
    holdout alone is what the gate selected on, so a promoted model's holdout accuracy is biased up (winner's curse)
    and drift alarms would be regression to the mean; the folds were not selected on."""
    if not oof_rows or not np.isfinite(oof_accuracy):
        return holdout_accuracy
    return (oof_accuracy * oof_rows + holdout_accuracy * holdout_rows) / (oof_rows + holdout_rows)
