"""Base models (a binned random forest, XGBoost, LightGBM), seeded, and the walk-forward loop.

Every fit minimizes the multi-class log-loss, unweighted: the gate scores log-loss against the baselines, and class
weights (once square-root inverse frequencies) bought accuracy on rare classes by pushing every probability away
from the majority class, so the served probabilities scored worse than a uniform guess on real stocks.

Speed without giving up honesty (issue 16): every booster is a histogram learner, so a symbol's rows are binned once
(bin edges from the development rows, never from the holdout) and each fold reuses those edges instead of
re-sketching the data; the random forest is LightGBM's `rf` mode on the same bins; boosters stop early on an inner
validation split (the last part of each training window, separated by `horizon` rows so no fit label looks into it).
The fits of one model (folds x base models) are independent: they run side by side, one thread each, as many at once
as the threads the worker gives this model (`fit_threads`), which keeps OpenMP from oversubscribing the cores.
Ensemble weights come from out-of-fold probabilities only; the holdout is scored once, by models that never saw it.
The blend is then calibrated and pooled with the persistence baseline (`model.calibration`) on the out-of-fold rows:
the holdout's probabilities are that pool's, fitted without it; the served pool is fitted again on every
out-of-sample row (folds and holdout).

What is served is then refit (`training.refit: full`): the same three models, with the same hyperparameters (the
boosters with the rounds early stopping chose for the evaluated fit) and the same weights, on every labelled row up to
the cutoff. The evaluated fit stopped before the holdout, a fifth of the history earlier: on daily data a model
served without the refit never learns its last 1 to 1.5 years. The gate still decides on the evaluated fit's
out-of-sample figures; nothing ever scores the refit models on rows they learned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from market_mlops.config import Training
from market_mlops.model.baselines import N_CLASSES, PERSISTENCE, BaselineTables
from market_mlops.model.calibration import Calibration
from market_mlops.model.ensemble import blend, fit_weights
from market_mlops.model.evaluation import classification_metrics
from market_mlops.model.selection import FeatureSelection, ranking_rounds, select_features
from market_mlops.model.walk_forward import Split, walk_forward_splits

log = logging.getLogger(__name__)
BASE_MODELS = ("rf", "xgb", "lgbm")
MAX_BIN = 31  # histogram bins per feature: coarse bins cost nothing on noisy returns and halve the split search
EARLY_STOPPING_ROUNDS = 20


def _inner_split(n: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    cut = int(n * 0.85)
    return np.arange(0, max(cut - horizon, 1)), np.arange(cut, n)


def default_params(cfg: Training) -> dict[str, dict[str, Any]]:
    """Each base model's parameters (logged with the run as `<model>.<key>`). Rounds are upper bounds for the
    boosters: early stopping picks the number."""
    return {
        "rf": {"boosting": "rf", "rounds": cfg.rf_estimators, "num_leaves": 31, "max_depth": 8, "min_data_in_leaf": 20,
               "bagging_fraction": 0.632, "bagging_freq": 1, "feature_fraction": 0.3, "feature_fraction_bynode": 0.33},
        "xgb": {"rounds": cfg.boost_rounds, "max_depth": 3, "learning_rate": 0.1, "subsample": 0.8,
                "colsample_bytree": 0.5, "min_child_weight": 5},
        "lgbm": {"rounds": cfg.boost_rounds, "num_leaves": 15, "learning_rate": 0.1, "bagging_fraction": 0.8,
                 "bagging_freq": 1, "feature_fraction": 0.5, "min_data_in_leaf": 20},
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


@dataclass
class BinnedRows:
    """One symbol's feature rows and labels, binned once on the rows of `bin_rows` (the development rows): LightGBM
    fits take row subsets of that binned data (no binning per fold: ~60 ms saved per fit on 3,000 rows); XGBoost
    quantizes each fold with those cut points."""

    X: np.ndarray
    y: np.ndarray
    bin_rows: np.ndarray
    lgb_binned: Any  # lightgbm.Dataset of the bin rows
    xgb_reference: Any  # xgboost.QuantileDMatrix holding the cut points

    @classmethod
    def build(cls, X: np.ndarray, y: np.ndarray, bin_rows: np.ndarray) -> BinnedRows:
        import lightgbm as lgb
        import xgboost as xgb

        if not np.array_equal(bin_rows, np.arange(len(bin_rows))):
            raise ValueError("bin rows must be the first rows (the development rows precede the holdout)")
        lgb_binned = lgb.Dataset(X[bin_rows], y[bin_rows], params={"max_bin": MAX_BIN, "verbose": -1, "num_threads": 1},
                                 free_raw_data=False).construct()
        xgb_ref = xgb.QuantileDMatrix(X[bin_rows], y[bin_rows], max_bin=MAX_BIN, nthread=1)
        return cls(X, y, bin_rows, lgb_binned, xgb_ref)

    def lgb_rows(self, rows: np.ndarray) -> Any:
        """The rows (positions among the bin rows) as a LightGBM subset."""
        return self.lgb_binned.subset(rows).construct()

    def xgb_rows(self, rows: np.ndarray, ref: Any = None) -> Any:
        import xgboost as xgb

        return xgb.QuantileDMatrix(self.X[rows], self.y[rows], ref=self.xgb_reference if ref is None else ref,
                                   max_bin=MAX_BIN, nthread=1)


def _check_classes(y: np.ndarray) -> None:
    if len(np.unique(y)) < N_CLASSES:
        raise ValueError(f"training window holds only classes {sorted(np.unique(y).astype(int))}; widen the history "
                         "or lower the label threshold")


def fit_base_model(name: str, data: BinnedRows, rows: np.ndarray, params: dict[str, Any], seed: int, horizon: int,
                   threads: int = 1) -> Any:
    """One base model on `rows` of `data`: a LightGBM or XGBoost booster (the rf is LightGBM's random forest)."""
    import lightgbm as lgb
    import xgboost as xgb

    _check_classes(data.y[rows])
    settings = {k: v for k, v in params.items() if k != "rounds"}
    if name == "rf":
        return lgb.train({"objective": "multiclass", "num_class": N_CLASSES, "num_threads": threads, "seed": seed,
                          "deterministic": True, "force_row_wise": True, "verbose": -1, **settings},
                         data.lgb_rows(rows), num_boost_round=params["rounds"])
    fit_pos, val_pos = _inner_split(len(rows), horizon)
    fit_rows, val_rows = rows[fit_pos], rows[val_pos]
    if name == "xgb":
        train = data.xgb_rows(fit_rows)
        return xgb.train({"objective": "multi:softprob", "num_class": N_CLASSES, "eval_metric": "mlogloss",
                          "tree_method": "hist", "max_bin": MAX_BIN, "nthread": threads, "seed": seed, **settings},
                         train, params["rounds"], evals=[(data.xgb_rows(val_rows, ref=train), "validation")],
                         early_stopping_rounds=EARLY_STOPPING_ROUNDS, verbose_eval=False)
    if name == "lgbm":
        return lgb.train({"objective": "multiclass", "num_class": N_CLASSES, "num_threads": threads, "seed": seed,
                          "deterministic": True, "force_row_wise": True, "verbose": -1, **settings},
                         data.lgb_rows(fit_rows), num_boost_round=params["rounds"],
                         valid_sets=[data.lgb_rows(val_rows)],
                         callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)])
    raise ValueError(f"unknown base model {name!r}")


def chosen_rounds(name: str, model: Any, params: dict[str, Any]) -> int:
    """The boosting rounds an evaluated fit ended with: early stopping's best iteration, or the configured rounds."""
    if name == "xgb":
        best = model.attr("best_iteration")
        return int(best) + 1 if best is not None else int(params["rounds"])
    if name == "lgbm":
        return int(model.best_iteration or model.current_iteration())
    return int(params["rounds"])


def refit_base_model(name: str, data: BinnedRows, rows: np.ndarray, params: dict[str, Any], rounds: int, seed: int,
                     threads: int = 1) -> Any:
    """One base model on `rows` for a fixed number of rounds (no early stopping: no row is held out)."""
    import lightgbm as lgb
    import xgboost as xgb

    _check_classes(data.y[rows])
    settings = {k: v for k, v in params.items() if k != "rounds"}
    if name == "xgb":
        return xgb.train({"objective": "multi:softprob", "num_class": N_CLASSES, "tree_method": "hist",
                          "max_bin": MAX_BIN, "nthread": threads, "seed": seed, **settings}, data.xgb_rows(rows), rounds)
    if name in ("rf", "lgbm"):
        return lgb.train({"objective": "multiclass", "num_class": N_CLASSES, "num_threads": threads, "seed": seed,
                          "deterministic": True, "force_row_wise": True, "verbose": -1, **settings},
                         data.lgb_rows(rows), num_boost_round=rounds)
    raise ValueError(f"unknown base model {name!r}")


def predict_proba(model: Any, X: np.ndarray) -> np.ndarray:
    from market_mlops.model.ensemble_model import booster_proba

    return booster_proba(model, X)


def feature_importance(model: Any, names: list[str]) -> pd.Series:
    """Total split gain per feature of a base model, largest first."""
    if hasattr(model, "feature_importance"):  # LightGBM
        gains = model.feature_importance(importance_type="gain")
    else:  # XGBoost: features never split on are absent
        by_name = model.get_score(importance_type="total_gain")
        gains = [by_name.get(f"f{i}", 0.0) for i in range(len(names))]
    return pd.Series(np.asarray(gains, dtype=float), index=names).sort_values(ascending=False)


def search_params(name: str, data: BinnedRows, rows: np.ndarray, base: dict[str, Any], cfg: Training,
                  horizon: int) -> dict[str, Any]:
    """Optional Optuna search on the inner validation log-loss, bounded by trial count and time."""
    if cfg.search_trials <= 0 or name == "rf":
        return base
    import optuna

    from market_mlops.model.ensemble import log_loss

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fit_pos, val_pos = _inner_split(len(rows), horizon)

    def objective(trial: optuna.Trial) -> float:
        params = dict(base, learning_rate=trial.suggest_float("learning_rate", 0.02, 0.3, log=True))
        if name == "xgb":
            params["max_depth"] = trial.suggest_int("max_depth", 2, 6)
            params["colsample_bytree"] = trial.suggest_float("colsample_bytree", 0.3, 1.0)
        else:
            params["num_leaves"] = trial.suggest_int("num_leaves", 7, 63)
            params["feature_fraction"] = trial.suggest_float("feature_fraction", 0.3, 1.0)
        model = fit_base_model(name, data, rows[fit_pos], params, cfg.seed, horizon, fit_threads(cfg))
        return log_loss(data.y[rows[val_pos]], predict_proba(model, data.X[rows[val_pos]]))

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=cfg.seed))
    study.optimize(objective, n_trials=cfg.search_trials, timeout=cfg.search_timeout_s)
    return {**base, **study.best_params}


@dataclass
class TrainedEnsemble:
    models: dict[str, Any]  # what is served: refit on every labelled row (`refit`), else the evaluated models
    weights: np.ndarray
    weights_method: str
    params: dict[str, dict[str, Any]]
    feature_names: list[str]  # the features the served models read (their fit's selection)
    fold_table: pd.DataFrame
    holdout_index: np.ndarray
    holdout_proba: np.ndarray
    holdout_base_proba: dict[str, np.ndarray]
    train_index: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)  # CPU seconds per base model, summed over its fits
    oof_accuracy: float = float("nan")  # the weighted ensemble on the walk-forward folds' test rows
    oof_rows: int = 0
    evaluated_models: dict[str, Any] = field(default_factory=dict)  # fitted before the holdout, scored on it
    evaluated_features: list[str] = field(default_factory=list)  # what the evaluated models read
    refit: bool = False  # `models` learned every labelled row (the last one is `fit_rows` - 1)
    fit_rows: int = 0  # rows the served models learned (from the first)
    selection: pd.DataFrame | None = None  # the served fit's feature selection table (`select_features`)
    calibration: Calibration = field(default_factory=Calibration)  # the served pool: every out-of-sample row
    evaluated_calibration: Calibration = field(default_factory=Calibration)  # out-of-fold rows only (the holdout's)
    baselines: BaselineTables | None = None  # the served baselines: counted on the rows the served models learned
    holdout_baselines: dict[str, np.ndarray] = field(default_factory=dict)  # their probabilities on the holdout,
    # counted on the evaluated fit's rows
    holdout_blend: np.ndarray | None = None  # the evaluated models' blend on the holdout, before calibration
    evaluated_baselines: BaselineTables | None = None  # the baselines counted on the evaluated fit's rows


@dataclass(frozen=True)
class _Fit:
    split: Split
    model: str


@dataclass(frozen=True)
class _SplitData:
    """One split's features, chosen on its training rows, binned on those rows."""

    selection: FeatureSelection
    data: BinnedRows


def _prepare_split(X: np.ndarray, y: np.ndarray, rows: np.ndarray, names: list[str], cfg: Training) -> _SplitData:
    selection = select_features(X, y, rows, names, cfg.feature_selection, cfg.seed, ranking_rounds(cfg.boost_rounds))
    return _SplitData(selection, BinnedRows.build(X[:, selection.kept], y, rows))


def _in_pool(at_once: int, prefix: str, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    if at_once <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(at_once, len(items)), thread_name_prefix=prefix) as pool:
        return list(pool.map(fn, items))


def _run_fits(fits: list[_Fit], fit_one: Callable[[_Fit], tuple[Any, np.ndarray, float]],
              at_once: int) -> dict[tuple[str, str], tuple[Any, np.ndarray, float]]:
    """Every fit, `at_once` side by side (boosters release the GIL), the largest first so the last ones are short."""
    ordered = sorted(fits, key=lambda f: -len(f.split.train))
    results = _in_pool(at_once, "fit", fit_one, ordered)
    return {(f.split.name, f.model): r for f, r in zip(ordered, results, strict=True)}


def last_known_by_position(y: np.ndarray, horizon: int) -> np.ndarray:
    """The label `horizon` rows earlier (NaN before there is one): the persistence baseline's input where no row
    was dropped between."""
    known = np.full(len(y), np.nan)
    known[horizon:] = y[:-horizon] if horizon else y
    return known


def train_ensemble(X: pd.DataFrame, y: np.ndarray, cfg: Training, horizon: int,
                   threads: int | None = None, last_known: np.ndarray | None = None) -> TrainedEnsemble:
    """Walk-forward folds for out-of-fold probabilities, weights and the calibration pool, then base models scored on
    the holdout, then (`cfg.refit == "full"`) the served models refit on every row. Each of these fits selects its
    features on its own training rows (`select_features`) and bins them on those rows.

    `threads`: cores this model may use (default `fit_threads(cfg)`); that many fits run at once, one thread each.
    `last_known`: per row, the label known `horizon` bars earlier (NaN: none), the persistence baseline's input
    (default: by position)."""
    last_known = last_known_by_position(y, horizon) if last_known is None else np.asarray(last_known, dtype=float)
    names = list(X.columns)
    Xv = X.to_numpy(dtype=np.float32)
    at_once = fit_threads(cfg) if threads is None else threads
    folds, holdout = walk_forward_splits(len(y), cfg.folds, horizon, cfg.embargo_bars, cfg.holdout_fraction, cfg.min_train_rows)
    started = time.perf_counter()
    prepared = dict(zip([s.name for s in [*folds, holdout]], _in_pool(
        at_once, "select", lambda s: _prepare_split(Xv, y, s.train, names, cfg), [*folds, holdout]), strict=True))
    selection_seconds = time.perf_counter() - started
    params = default_params(cfg)
    if cfg.search_trials > 0:
        last = prepared[folds[-1].name]
        params = {m: search_params(m, last.data, folds[-1].train, params[m], cfg, horizon) for m in BASE_MODELS}

    def fit_one(fit: _Fit) -> tuple[Any, np.ndarray, float]:
        started = time.perf_counter()
        split = prepared[fit.split.name]
        model = fit_base_model(fit.model, split.data, fit.split.train, params[fit.model], cfg.seed, horizon, 1)
        return model, predict_proba(model, Xv[fit.split.test][:, split.selection.kept]), time.perf_counter() - started

    done = _run_fits([_Fit(s, m) for s in [*folds, holdout] for m in BASE_MODELS], fit_one, at_once)
    timings = {m: sum(done[(s.name, m)][2] for s in [*folds, holdout]) for m in BASE_MODELS}

    rows: list[dict[str, Any]] = []
    for split in folds:
        fold_probas = {m: done[(split.name, m)][1] for m in BASE_MODELS}
        equal = blend([fold_probas[m] for m in BASE_MODELS], np.full(len(BASE_MODELS), 1 / len(BASE_MODELS)))
        metrics = classification_metrics(y[split.test], equal)
        rows.append({"fold": split.name, "train_rows": len(split.train), "test_rows": len(split.test),
                     "train_end": int(split.train[-1]), "test_start": int(split.test[0]), "test_end": int(split.test[-1]),
                     "features": len(prepared[split.name].selection.kept),
                     **{f"{m}_accuracy": classification_metrics(y[split.test], fold_probas[m])["accuracy"] for m in BASE_MODELS},
                     "ensemble_equal_accuracy": metrics["accuracy"], "ensemble_equal_log_loss": metrics["log_loss"]})
    oof_y = y[np.concatenate([s.test for s in folds])]
    oof = [np.vstack([done[(s.name, m)][1] for s in folds]) for m in BASE_MODELS]
    weights, method = fit_weights(oof, oof_y)
    oof_blend = blend(oof, weights)
    # Persistence on each fold's test rows as counted on that fold's training rows: out of sample, like the blend.
    oof_persistence = np.vstack([BaselineTables.fit(y[s.train], last_known[s.train]).probabilities(
        PERSISTENCE, last_known[s.test], len(s.test)) for s in folds])
    evaluated_calibration = Calibration.fit(oof_y, oof_blend, oof_persistence)
    oof_proba = evaluated_calibration.apply(oof_blend, oof_persistence)
    oof_pred = oof_proba.argmax(axis=1)
    log.info("ensemble weights %s (%s) from %d out-of-fold rows; calibration a %.2f b %.2f c %s; fit seconds %s",
             {m: round(float(w), 3) for m, w in zip(BASE_MODELS, weights, strict=True)}, method, len(oof_y),
             evaluated_calibration.a, evaluated_calibration.b, [round(v, 2) for v in evaluated_calibration.c],
             {m: round(t, 2) for m, t in timings.items()})

    evaluated = {m: done[(holdout.name, m)][0] for m in BASE_MODELS}
    holdout_base = {m: done[(holdout.name, m)][1] for m in BASE_MODELS}
    holdout_blend = blend([holdout_base[m] for m in BASE_MODELS], weights)
    evaluated_tables = BaselineTables.fit(y[holdout.train], last_known[holdout.train])
    holdout_baselines = evaluated_tables.all_probabilities(last_known[holdout.test], len(holdout.test))
    holdout_proba = evaluated_calibration.apply(holdout_blend, holdout_baselines[PERSISTENCE])
    # What serves is pooled on every out-of-sample row: the folds' and the holdout's (its blend never saw it).
    calibration = Calibration.fit(np.concatenate([oof_y, y[holdout.test]]), np.vstack([oof_blend, holdout_blend]),
                                  np.vstack([oof_persistence, holdout_baselines[PERSISTENCE]]))
    evaluated_selection = prepared[holdout.name].selection
    served, fit_rows, served_selection = evaluated, len(holdout.train), evaluated_selection
    if cfg.refit == "full":
        started = time.perf_counter()
        served_selection = select_features(Xv, y, np.arange(len(y)), names, cfg.feature_selection, cfg.seed,
                                           ranking_rounds(cfg.boost_rounds))
        selection_seconds += time.perf_counter() - started
        served = refit_served_models(Xv[:, served_selection.kept], y, evaluated, params, cfg.seed, at_once, timings)
        fit_rows = len(y)
    timings["selection"] = selection_seconds
    log.info("%s for the served fit; folds kept %s", served_selection.summary(cfg.feature_selection),
             [len(prepared[s.name].selection.kept) for s in folds])
    return TrainedEnsemble(models=served, weights=weights, weights_method=method, params=params,
                           feature_names=served_selection.names(), fold_table=pd.DataFrame(rows),
                           holdout_index=holdout.test, holdout_proba=holdout_proba, holdout_base_proba=holdout_base,
                           train_index=holdout.train, timings=timings,
                           oof_accuracy=float((oof_pred == oof_y).mean()), oof_rows=int(len(oof_y)),
                           evaluated_models=evaluated, evaluated_features=evaluated_selection.names(),
                           refit=cfg.refit == "full", fit_rows=fit_rows, selection=served_selection.table,
                           calibration=calibration, evaluated_calibration=evaluated_calibration,
                           baselines=BaselineTables.fit(y[:fit_rows], last_known[:fit_rows]),
                           holdout_baselines=holdout_baselines, holdout_blend=holdout_blend,
                           evaluated_baselines=evaluated_tables)


def refit_served_models(X: np.ndarray, y: np.ndarray, evaluated: dict[str, Any], params: dict[str, dict[str, Any]],
                        seed: int, at_once: int, timings: dict[str, float]) -> dict[str, Any]:
    """The three models again on every row (bins from all of them: every row is before the cutoff), each with the
    rounds its evaluated fit ended with; their CPU seconds are added to `timings`."""
    everything = np.arange(len(y))
    data = BinnedRows.build(X, y, everything)

    def fit(name: str) -> tuple[Any, float]:
        started = time.perf_counter()
        model = refit_base_model(name, data, everything, params[name], chosen_rounds(name, evaluated[name], params[name]),
                                 seed, 1)
        return model, time.perf_counter() - started

    results = _in_pool(at_once, "refit", fit, list(BASE_MODELS))
    for name, (_, seconds) in zip(BASE_MODELS, results, strict=True):
        timings[name] = timings.get(name, 0.0) + seconds
    return {name: model for name, (model, _) in zip(BASE_MODELS, results, strict=True)}


def reference_accuracy(oof_accuracy: float, oof_rows: int, holdout_accuracy: float, holdout_rows: int) -> float:
    """The accuracy live forecasts are held to: every out-of-sample row pooled (walk-forward folds and holdout). The
    holdout alone is what the gate selected on, so a promoted model's holdout accuracy is biased up (winner's curse)
    and drift alarms would be regression to the mean; the folds were not selected on."""
    if not oof_rows or not np.isfinite(oof_accuracy):
        return holdout_accuracy
    return (oof_accuracy * oof_rows + holdout_accuracy * holdout_rows) / (oof_rows + holdout_rows)
