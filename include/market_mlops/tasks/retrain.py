"""Monthly full retrain of one (symbol, timeframe): the task bodies of the `model_retrain` DAG.

Point in time: training reads the data version logged for the run's interval and only bars before the interval
end; labels of the last `horizon` bars are unknown and dropped. The gate decides on the evaluated fit (scored on a
holdout it never saw); the version registered and served is the same configuration refit on every labelled row
(`training.refit`), tagged with where its evaluation ended and where its fit ended. A series that has no champion
and whose challenger does not pass gets the better baseline as its champion (`register_baseline_champion`), so every
series is forecast, drift-checked and listed; a model has to beat it to replace it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from market_mlops.config import PipelineConfig, TimeframeSpec, Training, get_config
from market_mlops.contracts import (
    ModelShard,
    RetrainPlan,
    RetrainReport,
    TrainingData,
    TrainingSummary,
)
from market_mlops.monitoring.detector import REFERENCE_ROWS
from market_mlops.monitoring.drift import NULL_THRESHOLDS_FILE, null_thresholds_record
from market_mlops.registry.provenance import fit_span, git_commit, package_versions
from market_mlops.tasks.phases import PhaseClock

if TYPE_CHECKING:
    from market_mlops.model.training import TrainedEnsemble

log = logging.getLogger(__name__)


class NoDataVersion(RuntimeError):
    """No ingested data version covers this interval yet."""

    retryable = False  # a retry cannot fix it: the task fails at once (orchestration.fail_now_when_permanent)
    hint = ('ingest the interval named above (market_data_ingestion, or a backfill of it), then trigger '
            'model_retrain again')


def resolve_data_version(interval_end: dt.datetime, md5: str | None = None,
                         cfg: PipelineConfig | None = None) -> TrainingData:
    """The data version to train on (`choose_training_version`), materialized read-only; fails with the backfill
    to run when none is fresh enough."""
    from market_mlops.data.versioning import (
        choose_training_version,
        collected_versions,
        ends_before,
        materialize,
        version_history,
    )

    cfg = cfg or get_config()
    gone = collected_versions(cfg).get(md5 or "")
    if gone:  # an Asset event of a version retention removed since: the date's first kept version trains instead
        log.info("data version %s was collected by retention on %s: training on the version logged for %s instead",
                 md5, gone[:10], interval_end.isoformat())
        md5 = None
    due = last_session_close(interval_end, cfg)
    floor = freshness_floor(due, cfg)
    record = choose_training_version(version_history(cfg), interval_end, md5, due, floor)
    if record is None:
        raise NoDataVersion(f"no data version logged up to {interval_end.isoformat()}: run market_data_ingestion "
                            "for that range first (or backfill it)")
    if ends_before(record, floor):
        raise NoDataVersion(
            f"the newest data version by {interval_end:%Y-%m-%d %H:%M} UTC ({record['md5'][:12]}) ends "
            f"{record['interval_end'][:10]}, but the last session before it closed {due:%Y-%m-%d} (allowed lag "
            f"{cfg.training.max_data_lag_days} days): run or backfill market_data_ingestion up to {due:%Y-%m-%d} first")
    path = materialize(cfg.data_root, record["md5"], cfg.dvc_remote_url, cfg.storage.s3_endpoint_url)
    log.info("training data version %s (logged for %s) materialized at %s", record["md5"], record.get("interval_end"), path)
    return {"md5": record["md5"], "path": str(path), "gx_result_id": record.get("gx_result_id", "unknown"),
            "interval_end": interval_end.isoformat()}


def last_session_close(interval_end: dt.datetime, cfg: PipelineConfig) -> dt.datetime:
    """The close of the last session at or before a retrain's cutoff: the data must reach it."""
    from market_mlops.data import calendar

    return calendar.session_closing_at_or_before(cfg.universe.schedule_calendar, interval_end).close.to_pydatetime()


def freshness_floor(due: dt.datetime, cfg: PipelineConfig) -> dt.datetime:
    """Data ending before this is too old to train for the cutoff whose last session closed at `due` (the model
    would carry this month's name but learn an older one)."""
    return due - dt.timedelta(days=cfg.training.max_data_lag_days)


class SeriesEnded(ValueError):
    """A series' data end before the cutoff and none follow (a delisted stock, an older file, a late vendor): its
    retrain is skipped, the champion kept, said in one line (a hole, later bars after missing sessions, fails)."""

    hint = ("import the series' later sessions (market-mlops import, or a backfill of market_data_ingestion) and "
            "rerun, or retrain the other series only (model_retrain's symbols)")

    def __init__(self, message: str, last: dt.date) -> None:
        super().__init__(message)
        self.last = last


def training_frame(dataset: Path, symbol: str, timeframe: str, cfg: PipelineConfig, until: dt.datetime,
                   history_years: int, fresh_from: dt.datetime | None = None,
                   horizon: int | None = None) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Features X, labels y (only rows with both), the bars of those rows (closes, timestamps and the label known
    `horizon` bars earlier, `last_known_label`), all before `until`.

    `fresh_from`: the pair's last bar must reach it. The version log says which interval a run covered, not that
    every session before it is in the data: a catch-up run over a hole would train on stale bars. `horizon`: the
    model's (default: the timeframe's main one)."""
    from market_mlops.data.dataset import load_bars
    from market_mlops.model.features import build_features, feature_columns
    from market_mlops.model.labels import labels_and_usable_rows

    spec, benchmark = cfg.spec(timeframe, horizon), cfg.universe.benchmark
    since = until - dt.timedelta(days=365 * history_years)
    bars = load_bars(dataset, timeframe, [symbol, *([benchmark] if benchmark else [])], until=until, since=since)
    own = bars[bars["symbol"] == symbol].reset_index(drop=True)
    if own.empty:
        raise ValueError(f"no {symbol} {timeframe} bars before {until.isoformat()} in the data version")
    last = own["ts"].iloc[-1]
    if fresh_from is not None and last < pd.Timestamp(fresh_from) - pd.Timedelta(days=1):  # a bar is stamped at its start
        due = f"{fresh_from:%Y-%m-%d %H:%M} UTC (the last session close minus the allowed lag)"
        if not load_bars(dataset, timeframe, [symbol], since=until).empty:  # later bars: sessions are missing between
            raise ValueError(f"{symbol} {timeframe} has a hole: its last bar before the cutoff starts "
                             f"{last:%Y-%m-%d %H:%M} UTC, over a day before {due}, and later bars exist; backfill "
                             f"market_data_ingestion from {last:%Y-%m-%d} and rerun")
        raise SeriesEnded(f"{symbol} {timeframe}'s data end {last:%Y-%m-%d}, before this cutoff (its bars must reach "
                          f"{due}): the series ended or its vendor is late; import its later sessions (market-mlops "
                          f"import, or backfill market_data_ingestion from {last:%Y-%m-%d}) and rerun, or retrain the "
                          f"other series only (model_retrain's symbols)", last.date())
    bench = bars[bars["symbol"] == benchmark] if benchmark else None  # the benchmark's own model: against itself
    feats = build_features(own, spec.bars_per_year, bench)
    cols = feature_columns(feats)
    labels, usable = labels_and_usable_rows(feats, own["close"], cols, spec.horizon, cfg.labels_of(symbol, timeframe))
    own = own.assign(last_known_label=labels.shift(spec.horizon))  # by bar: what the persistence baseline calls
    return (feats.loc[usable, cols].reset_index(drop=True), labels[usable].to_numpy().astype(int),
            own.loc[usable].reset_index(drop=True))


def retrain_model(symbol: str, timeframe: str, data: TrainingData, airflow_ctx: dict[str, str] | None = None,
                  force_promotion: bool = False, search_trials: int | None = None,
                  cfg: PipelineConfig | None = None, emergency: bool = False,
                  horizon: int | None = None) -> TrainingSummary:
    """Train, evaluate against baselines, log to MLflow, register (idempotently) and run the promotion gate.
    `emergency`: the drift check found the champion broken; if no challenger passes, the better baseline serves.
    `horizon`: which of the timeframe's models (default: its main horizon's)."""
    from market_mlops.model.ensemble_model import LAST_KNOWN_LABEL
    from market_mlops.model.evaluation import evaluate_holdout
    from market_mlops.model.training import train_ensemble
    from market_mlops.registry import aliases, store, versions
    from market_mlops.tasks.baseline import register_baseline_champion
    from market_mlops.tasks.promotion import apply_gate, evaluate_gate

    cfg = cfg or get_config()
    spec = cfg.spec(timeframe, horizon)
    training_cfg = cfg.training if search_trials is None else cfg.training.model_copy(update={"search_trials": search_trials})
    interval_end = dt.datetime.fromisoformat(data["interval_end"])
    name = store.model_name(symbol, timeframe, spec.horizon, cfg)
    run_key = f"retrain-{store.model_slug(symbol, timeframe, spec.horizon, cfg)}-{interval_end:%Y%m%dT%H%M}"

    # A retried task finds its earlier work by the run key: done (summary recorded) is reported again; a run that
    # finished logging is reused and only what is missing after it (registration, gate) is done.
    existing = store.find_run(run_key, cfg)
    earlier = existing.data.params.get("horizon") if existing is not None else None
    if earlier is not None and earlier != str(spec.horizon):
        raise ValueError(f"run {run_key} trained {name} {earlier} bars ahead, the config now says {spec.horizon}: the "
                         "timeframe's main horizon (the first of timeframes.<tf>.horizons) changed; put it first again")
    recorded = existing.data.tags.get("mlops.summary") if existing is not None else None
    if recorded:
        done: TrainingSummary = json.loads(recorded)
        log.info("run %s already registered as %s v%s; not training again", run_key, name, done.get("version"))
        return done

    clock = PhaseClock()  # what a mapped task spends beside the fit
    try:
        X, y, bars = training_frame(Path(data["path"]), symbol, timeframe, cfg, interval_end,
                                    training_cfg.history_years,
                                    fresh_from=freshness_floor(last_session_close(interval_end, cfg), cfg),
                                    horizon=spec.horizon)
    except SeriesEnded as ended:
        kept = aliases.alias_version(name, aliases.CHAMPION, cfg)
        why = (f"data end {ended.last.isoformat()}, before this cutoff; "
               + (f"champion v{kept} kept" if kept else "no champion yet") + f" ({ended})")
        log.warning("%s: retrain skipped: %s", name, why)
        return {"model": name, "symbol": symbol, "timeframe": timeframe, "horizon": spec.horizon, "skipped": why,
                "champion_version": kept}
    history = history_note(Path(data["path"]), symbol, timeframe, interval_end, training_cfg.history_years,
                           bars["ts"].iloc[0])
    clock.mark("features")
    last_known = bars["last_known_label"].to_numpy(dtype=float)
    trained = train_ensemble(X, y, training_cfg, spec.horizon, last_known=last_known)
    clock.mark("fit")
    hold = trained.holdout_index
    evaluation = evaluate_holdout(y, trained.holdout_proba, bars["close"].to_numpy(dtype=float), hold,
                                  trained.train_index, spec.horizon, spec.bars_per_year, last_known,
                                  baselines=trained.holdout_baselines)
    clock.mark("evaluate")
    commit = git_commit()
    span = fit_span(bars, trained)
    if existing is not None and existing.info.status == "FINISHED":  # logged completely before a retry
        run_id = existing.info.run_id
    else:
        tags = {"mlops.run_key": run_key, "symbol": symbol, "timeframe": timeframe, "horizon": str(spec.horizon),
                "data.version": data["md5"],
                "data.gx_result_id": data.get("gx_result_id", "unknown"), "data.interval_end": data["interval_end"],
                "code.git_commit": commit, **span, **{f"airflow.{k}": v for k, v in (airflow_ctx or {}).items()},
                **package_versions()}
        run_id = _log_training_run(existing.info.run_id if existing is not None else None, run_key, tags, X, y, bars,
                                   trained, evaluation, spec, training_cfg, symbol, timeframe, cfg)
    clock.mark("mlflow_log")
    registered = versions.version_of_run(name, run_id, cfg)
    gate = evaluate_gate(name, str(registered.version) if registered else None,
                         X.iloc[hold].assign(**{LAST_KNOWN_LABEL: last_known[hold]}), y[hold], bars["ts"].iloc[hold],
                         trained.holdout_proba, evaluation, trained.holdout_baselines, spec.horizon,
                         force=force_promotion, cfg=cfg)
    clock.mark("gate")
    lineage = {"data.version": data["md5"], "code.git_commit": commit, versions.KIND_TAG: "model", **span}
    mv = registered or versions.create_version(name, run_id, lineage, cfg, unsigned_tags=gate.version_tags())
    clock.mark("register")
    decision = apply_gate(name, str(mv.version), gate, cfg)
    if emergency and not gate.decision.promote and not gate.champion_is_baseline and not gate.demote \
            and gate.champion is not None and gate.decision.outcome != "already champion":
        gate = dataclasses.replace(gate, demote=f"champion v{gate.champion} is in the emergency band and no challenger "
                                                "passed the gate")
    serving: Literal["model", "baseline"] = "baseline" if gate.champion_is_baseline and not gate.decision.promote \
        else "model"
    baseline_rule = None
    if decision.get("champion_version") is None or gate.demote:  # nothing (good) serves: the better baseline does
        baseline = register_baseline_champion(symbol, timeframe, data, X, y, bars, trained, evaluation, gate, cfg,
                                               run_id, spec.horizon)
        decision["champion_version"] = baseline["version"]
        baseline_rule, serving = baseline["rule"], "baseline"
    clock.mark("promote")
    summary: TrainingSummary = {
        "model": name, "symbol": symbol, "timeframe": timeframe, "horizon": spec.horizon, "version": str(mv.version),
        "run_id": run_id,
        "data_version": data["md5"], "holdout_rows": int(len(hold)), "accuracy": round(evaluation["model_accuracy"], 4),
        "balanced_accuracy": round(evaluation["model_balanced_accuracy"], 4),
        "log_loss": round(evaluation["model_log_loss"], 4), "ic": _finite(evaluation["model_ic"]),
        "long_flat_return": round(evaluation["model_long_flat_return"], 4),
        "weights": [round(float(w), 3) for w in trained.weights], **decision, "serving": serving,
        "fit_end": span[versions.FIT_END_TAG], "evaluation_end": span[versions.EVALUATION_END_TAG],
        "history": history, "seconds": clock.seconds()}
    if baseline_rule:
        summary["baseline_rule"] = baseline_rule
    store.client(cfg).set_tag(run_id, "mlops.summary", json.dumps(summary))  # the mark of a finished model
    log.info("retrained %s v%s: holdout log-loss %.4f (climatology %.4f, persistence %.4f), accuracy %.3f "
             "(climatology %.3f, persistence %.3f) -> %s; %s serves; %s, fit to %s, evaluated to %s; seconds %s", name,
             mv.version, summary["log_loss"], evaluation["climatology_log_loss"], evaluation["persistence_log_loss"],
             summary["accuracy"], evaluation["climatology_accuracy"], evaluation["persistence_accuracy"],
             decision["decision"], serving, history, summary["fit_end"], summary["evaluation_end"], summary["seconds"])
    return summary


def history_note(dataset: Path, symbol: str, timeframe: str, until: dt.datetime, history_years: int,
                 first_row: pd.Timestamp) -> str:
    """The rows a model learned from, and the stored bars `training.history_years` left out (said, never silent)."""
    from market_mlops.data.dataset import first_bar

    since = until - dt.timedelta(days=365 * history_years)
    text = f"learned rows from {first_row:%Y-%m-%d}"
    stored = first_bar(dataset, symbol, timeframe)
    if stored is not None and stored < pd.Timestamp(since):
        text += (f" (training.history_years {history_years} leaves out its stored bars from {stored:%Y-%m-%d} to "
                 f"{since:%Y-%m-%d})")
    return text


def _finite(value: float, digits: int = 4) -> float | None:
    return round(float(value), digits) if np.isfinite(value) else None


def retrain_shard(shard: ModelShard, data: TrainingData, airflow_ctx: dict[str, str] | None = None,
                  force_promotion: bool = False, search_trials: int | None = None,
                  cfg: PipelineConfig | None = None, emergency: bool = False) -> list[TrainingSummary]:
    """`retrain_model` for each model of a shard, one after another (each fit with the threads the worker gives
    this task); raises `ShardFailed` naming the models that failed, after all the others are done."""
    from market_mlops.tasks.shards import run_shard
    from market_mlops.tasks.universe import model_label

    return run_shard(shard["models"], model_label,
                     lambda m: retrain_model(m["symbol"], m["timeframe"], data, airflow_ctx, force_promotion,
                                             search_trials, cfg, emergency, m.get("horizon")))


def _log_training_run(run_id: str | None, run_key: str, tags: dict[str, str], X: pd.DataFrame, y: np.ndarray,
                      bars: pd.DataFrame, trained: TrainedEnsemble, evaluation: dict[str, Any], spec: TimeframeSpec,
                      training_cfg: Training, symbol: str, timeframe: str, cfg: PipelineConfig) -> str:
    """One MLflow run: parameters, fold and holdout metrics, evaluation files and charts, the drift reference and
    the pyfunc model, in a handful of calls (parameters, one folder of artifacts, the model, metrics): every call is a
    round trip to the tracking server, and a fleet makes thousands of runs."""
    from concurrent.futures import ThreadPoolExecutor

    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    from market_mlops.model.ensemble_model import LAST_KNOWN_LABEL, save_base_models
    from market_mlops.model.labels import class_shares, label_record
    from market_mlops.model.training import reference_accuracy
    from market_mlops.registry import store, versions

    hold = trained.holdout_index
    client = store.client(cfg)
    params = {"horizon": spec.horizon,
              **{f"labels.{k}": v for k, v in label_record(cfg.labels_of(symbol, timeframe)).items()},
              "seed": training_cfg.seed, "folds": training_cfg.folds, "embargo_bars": training_cfg.embargo_bars,
              "holdout_fraction": training_cfg.holdout_fraction, "history_years": training_cfg.history_years,
              "rows": len(y), "features": X.shape[1], "features_selected": len(trained.feature_names),
              **{f"feature_selection.{k}": v for k, v in training_cfg.feature_selection.model_dump().items()},
              "weights_method": trained.weights_method,
              "train_start": str(bars["ts"].iloc[0]), "train_end": str(bars["ts"].iloc[trained.train_index[-1]]),
              "holdout_start": str(bars["ts"].iloc[hold[0]]), "holdout_end": str(bars["ts"].iloc[hold[-1]]),
              "refit": training_cfg.refit, "fit_rows": trained.fit_rows,
              **{f"class_share.{k}": v for k, v in class_shares(y).items()},
              **{f"{m}.{k}": v for m, p in trained.params.items() for k, v in p.items()},
              **{f"weight.{m}": float(w) for m, w in zip(trained.models, trained.weights, strict=True)}}
    reference = reference_accuracy(trained.oof_accuracy, trained.oof_rows, float(evaluation["model_accuracy"]),
                                   len(trained.holdout_index))
    lean = cfg.training.model_artifacts == "lean"  # no pyfunc to copy the run's params from: one batch at the end
    batch_params = [Param(k, str(v)) for k, v in params.items()]
    reference_tag = [RunTag("drift.reference", "out-of-sample accuracy pooled over walk-forward folds and holdout")]
    with mlflow.start_run(run_id=run_id, experiment_id=store.experiment_id(cfg), run_name=run_key, tags=tags) as run:
        run_id = str(run.info.run_id)
        if not lean:
            client.log_batch(run_id, params=batch_params, tags=reference_tag)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            _write_evaluation(folder / "run", trained, evaluation, y[hold])
            _write_attributions(folder / "run", trained, X.iloc[hold])
            _write_stress(folder / "run", bars, y, trained, spec, cfg)
            # The served models' inputs: every row they learned (the last 2,000).
            _write_drift_reference(folder / "run" / "reference", X.iloc[:trained.fit_rows].tail(2000), cfg)
            # A lean version's native files go up with the rest of the run's files, in the same call.
            model_dir = folder / "run" / versions.LEAN_MODEL_PATH if lean else folder / "model_files"
            checksums = save_base_models(trained.models, trained.weights, trained.feature_names, model_dir,
                                         {"symbol": symbol, "timeframe": timeframe, "horizon": spec.horizon,
                                          "labels": label_record(cfg.labels_of(symbol, timeframe)),
                                          "calibration": trained.calibration.record(),
                                          **({"baselines": trained.baselines.record()} if trained.baselines else {})})
            # Through a tracking server the run's files go up while MLflow builds and logs the pyfunc model (its own
            # upload, a second folder); into a local store a second thread only contends with the first (+0.2 s).
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-files") as pool:
                uploading = pool.submit(client.log_artifacts, run_id, str(folder / "run"))
                if str(run.info.artifact_uri).startswith("file:"):
                    uploading.result()  # a local store: one at a time
                example = X.tail(3).assign(**{LAST_KNOWN_LABEL: bars[LAST_KNOWN_LABEL].tail(3).to_numpy(dtype=float)})
                model_id = None if lean else versions.log_pyfunc_ensemble(model_dir, example, tag_run=False)
                uploading.result()
        file_tags = [RunTag(k, v) for k, v in versions.model_file_tags(checksums, model_id).items()]
        now = int(time.time() * 1000)
        metrics = [Metric(f"fold.{k}", float(v), now, int(str(step)), model_id=model_id)
                   for step, row in trained.fold_table.iterrows() for k, v in row.items()
                   if str(k).endswith(("accuracy", "log_loss"))]
        metrics += [Metric(f"holdout.{k}", float(v), now, 0, model_id=model_id) for k, v in evaluation.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)]
        metrics += [Metric("oof.model_accuracy", trained.oof_accuracy, now, 0, model_id=model_id),
                    Metric("drift.reference_accuracy", reference, now, 0, model_id=model_id),
                    Metric(REFERENCE_ROWS, float(trained.oof_rows + len(trained.holdout_index)), now, 0,
                           model_id=model_id)]  # what the reference was measured on: the detector's margin
        client.log_batch(run_id, metrics=metrics, params=batch_params if lean else [],
                         tags=(reference_tag if lean else []) + file_tags)  # linked to the logged model, as log_model would
        return run_id


def _write_evaluation(folder: Path, trained: TrainedEnsemble, evaluation: dict[str, Any], y_holdout: np.ndarray) -> None:
    """Fold table, feature selection and importance, holdout metrics and their charts (SVG) as files of the run."""
    from market_mlops.model.labels import CLASSES
    from market_mlops.model.training import feature_importance
    from market_mlops.monitoring.charts import bar_chart, matrix_chart

    importances = feature_importance(trained.models["rf"], trained.feature_names)
    (folder / "evaluation").mkdir(parents=True)
    (folder / "plots").mkdir()
    (folder / "evaluation" / "fold_table.csv").write_text(trained.fold_table.to_csv(index=False))
    (folder / "evaluation" / "feature_importance.csv").write_text(importances.to_csv())
    (folder / "evaluation" / "holdout_metrics.json").write_text(json.dumps(evaluation, default=float))
    (folder / "plots" / "confusion_matrix.svg").write_text(matrix_chart(
        CLASSES, CLASSES, evaluation["model_confusion"], title="holdout confusion matrix"))
    _write_calibration(folder, trained, evaluation, y_holdout)
    top = importances.head(25)
    (folder / "plots" / "feature_importance.svg").write_text(bar_chart(
        [str(k) for k in top.index], [float(v) for v in top], title="feature importance (forest, split gain, top 25)",
        value_format="{:.3g}"))
    if trained.selection is not None:
        _write_selection(folder, trained.selection)


def _write_attributions(folder: Path, trained: TrainedEnsemble, X_holdout: pd.DataFrame) -> None:
    """What the served models lean on: each feature's mean absolute contribution to the called class over the
    holdout rows (`model.explain`, ensemble-weighted), as a file and a chart of the run; the drift check compares a
    version's live forecasts with it."""
    from types import SimpleNamespace

    from market_mlops.model.ensemble import blend
    from market_mlops.model.ensemble_model import booster_proba
    from market_mlops.model.explain import ATTRIBUTIONS_FILE, ensemble_contributions, mean_abs_contributions
    from market_mlops.monitoring.charts import bar_chart

    names = trained.feature_names
    X = X_holdout[names].to_numpy(dtype=np.float32)
    order = list(trained.models)
    base = SimpleNamespace(meta={"order": order, "weights": [float(w) for w in trained.weights]}, **trained.models)
    called = blend([booster_proba(trained.models[m], X) for m in order], np.asarray(trained.weights)).argmax(axis=1)
    means = mean_abs_contributions(ensemble_contributions(base, X), called, names)
    (folder / "explain").mkdir(parents=True, exist_ok=True)
    (folder / "explain" / ATTRIBUTIONS_FILE).write_text(json.dumps(
        {"rows": len(X), "space": "ensemble-weighted margin contributions to the called class",
         "mean_abs": means}, indent=2))
    top = sorted(means.items(), key=lambda kv: -kv[1])[:25]
    (folder / "plots" / "attributions.svg").write_text(bar_chart(
        [k for k, _ in top], [v for _, v in top], title="mean |contribution| to the called class (holdout, top 25)",
        value_format="{:.3g}"))


def _write_stress(folder: Path, bars: pd.DataFrame, y: np.ndarray, trained: TrainedEnsemble, spec: TimeframeSpec,
                  cfg: PipelineConfig) -> None:
    """The holdout's calls on the named stress windows it covers and its long/short book over resampled paths
    (`model.stress`), as a file of the run: one backtest path is not the only one a version is judged on."""
    from market_mlops.model.stress import book_returns, bootstrap_book, stress_rows

    hold = trained.holdout_index
    close = bars["close"].to_numpy(dtype=float)
    ahead = np.minimum(hold + spec.horizon, len(close) - 1)
    forward = np.where(hold + spec.horizon < len(close), close[ahead] / close[hold] - 1, np.nan)
    next_bar = np.where(hold + 1 < len(close), close[np.minimum(hold + 1, len(close) - 1)] / close[hold] - 1, 0.0)
    resolved = np.isfinite(forward)
    proba = trained.holdout_proba
    report = {"rows": int(len(hold)), "stress": stress_rows(
        bars["ts"].iloc[hold[resolved]].reset_index(drop=True), proba[resolved], y[hold][resolved], forward[resolved],
        next_bar[resolved], cfg.stress.windows, spec.bars_per_year, y_before=y[trained.train_index],
        horizon=spec.horizon),
        "bootstrap": bootstrap_book(book_returns(proba[resolved], next_bar[resolved]), spec.bars_per_year,
                                    cfg.stress.bootstrap_paths, cfg.stress.seed)}
    (folder / "evaluation" / "stress.json").write_text(json.dumps(report, indent=2))


def _write_calibration(folder: Path, trained: TrainedEnsemble, evaluation: dict[str, Any], y_holdout: np.ndarray) -> None:
    """The holdout's reliability table (per class and probability bin: forecasts, mean probability, observed
    frequency) and chart, and the calibration pools (the holdout's and the served one)."""
    from market_mlops.model.calibration import reliability_table
    from market_mlops.monitoring.charts import reliability_chart

    table = reliability_table(y_holdout, trained.holdout_proba)
    (folder / "evaluation" / "reliability.csv").write_text(table.to_csv(index=False))
    (folder / "evaluation" / "calibration.json").write_text(json.dumps(
        {"served": trained.calibration.record(), "holdout": trained.evaluated_calibration.record(),
         "log_loss": {k: evaluation.get(f"{k}_log_loss") for k in ("model", "climatology", "persistence")},
         "brier": {k: evaluation.get(f"{k}_brier") for k in ("model", "climatology", "persistence")},
         "calibration_error": evaluation.get("model_calibration_error")}, indent=2, default=float))
    (folder / "plots" / "reliability.svg").write_text(reliability_chart(table, "holdout reliability (per class)"))


def _write_selection(folder: Path, table: pd.DataFrame) -> None:
    """Which features the served fit kept and why the others went, and the ranking model's gain shares."""
    from market_mlops.monitoring.charts import bar_chart

    (folder / "evaluation" / "feature_selection.csv").write_text(table.to_csv(index=False))
    ranked = table[table["importance"].notna()].sort_values("importance", ascending=False).head(30)
    (folder / "plots" / "feature_selection.svg").write_text(bar_chart(
        [f"{f}{'' if kept else ' (dropped)'}" for f, kept in zip(ranked["feature"], ranked["kept"], strict=True)],
        [float(v) for v in ranked["importance"]],
        title=f"feature selection: {int(table['kept'].sum())} of {len(table)} kept (share of ranking gain, top 30)",
        value_format="{:.3g}"))


def _write_drift_reference(folder: Path, reference: pd.DataFrame, cfg: PipelineConfig) -> None:
    """The training reference for drift checks: a sample of training features and each feature's PSI limits."""
    folder.mkdir(parents=True)
    reference.to_parquet(folder / "reference_features.parquet", index=False)
    (folder / NULL_THRESHOLDS_FILE).write_text(json.dumps(null_thresholds_record(reference, cfg.drift)))


def md5_from_asset_events(events: Sequence[Any], interval_end: dt.datetime, lookback: int = 100) -> str | None:
    """The data version of the last `market_dataset` event whose interval ended by `interval_end`."""
    try:
        recent = list(events[-lookback:])
    except (IndexError, KeyError, TypeError):
        return None
    cutoff = interval_end.astimezone(dt.UTC)
    eligible = [e.extra for e in recent if e.extra and e.extra.get("md5") and
                dt.datetime.fromisoformat(e.extra["interval_end"]).astimezone(dt.UTC) <= cutoff]
    return eligible[-1]["md5"] if eligible else None


def report_retrain(results: list[list[TrainingSummary]], shards: list[ModelShard]) -> RetrainReport:
    """Summarize the mapped retrains (it runs only when none failed: a failed shard fails the run and alerts itself)."""
    done = [r for shard in results for r in shard]
    for r in done:
        log.info("%s v%s: log-loss %s vs climatology %s / persistence %s, accuracy %s -> %s (%s)", r.get("model"),
                 r.get("version"), r.get("log_loss"), r.get("climatology_log_loss"), r.get("persistence_log_loss"),
                 r.get("accuracy"), r.get("decision"),
                 r.get("reason", ""))
    return {"trained": len(done), "models": sum(len(s["models"]) for s in shards),
            "promoted": [r["model"] for r in done if r.get("decision") == "promoted"]}


def plan_retrain(until_param: str | None, interval_end: dt.datetime | None, triggering: list[dict[str, Any]],
                 inlet_events: Sequence[Any], cfg: PipelineConfig | None = None) -> RetrainPlan | None:
    """What a retrain run trains on: {until, md5}; None when an Asset event does not close a month.

    - `until` param set (emergency retrain): that time, the last data version logged by then.
    - Asset-triggered: the event's session must be the last trading session of its month; train up to the 1st of
      the next month 00:00 UTC (the same cutoff and run key as the cron run of that month), on the event's md5.
    - Cron: the interval end (the 1st), the last data version published by then.
    """
    from market_mlops.data import calendar

    cfg = cfg or get_config()
    if until_param:
        until = dt.datetime.fromisoformat(until_param)
        return {"until": until.isoformat(), "md5": None, "trigger": "param"}
    if triggering:
        # Events queue up while a run is active or the DAG paused: train for the latest one that closes a month.
        closing = []
        for event in triggering:
            end = dt.datetime.fromisoformat(event["interval_end"]).astimezone(dt.UTC)
            last = calendar.session_closing_at_or_before(cfg.universe.schedule_calendar, end)
            following = calendar.first_session_after(cfg.universe.schedule_calendar, last.close.to_pydatetime())
            if following is None or following.date.month != last.date.month:
                closing.append((last.date, event))
        if not closing:
            return None
        last_day, event = max(closing, key=lambda pair: (pair[0], pair[1].get("interval_end", "")))
        until = (dt.datetime(last_day.year, last_day.month, 1, tzinfo=dt.UTC) + dt.timedelta(days=32)).replace(day=1)
        return {"until": until.isoformat(), "md5": event.get("md5"), "trigger": "asset"}
    if interval_end is None:
        raise ValueError("a cron retrain needs its data interval end")
    return {"until": interval_end.isoformat(), "md5": md5_from_asset_events(inlet_events, interval_end), "trigger": "cron"}
