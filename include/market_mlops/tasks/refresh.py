"""Weekly ensemble-weight refresh of one champion: same base models, new weights from the most recent window.

The window is the resolved bars the champion's base models never learned (after its fit ended, less `horizon` bars
whose labels share a future with the last learned ones), at most `refresh_window` of them: weights fitted on rows the
models learned would favour whichever model memorised most. It is split in time: weights are fitted on its earlier
part and the gate scores the result on its later part, separated by `horizon` rows. Too few such rows (a refit
champion a few weeks old on daily bars) and nothing is refitted: the summary says why.

The gate asks more of a refresh than of a retrain: the same base models with other weights are worth a new version
only if they are proven better than the champion (not just not worse), and the test spends the refresh's share of the
yearly false-promotion budget (`registry.gate.level_of`: a tenth of `training.yearly_false_promotions` over 52
Mondays), so 52 Mondays a year cannot find a lucky blend more often than that. The new version reuses the
champion's base-model files byte for byte (same checksums), records its parent, and keeps the parent's calibration
pool and baselines.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from market_mlops.config import PipelineConfig, get_config
from market_mlops.contracts import ChampionShard, TrainingSummary
from market_mlops.monitoring.detector import REFERENCE_ROWS
from market_mlops.registry import aliases, store, versions

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
FIT_SHARE = 0.6


@dataclass
class RecentWindow:
    """The last `refresh_window` resolved bars the base models never learned: features (with ts), labels, closes;
    fit and evaluation rows."""

    features: pd.DataFrame
    y: np.ndarray
    closes: np.ndarray
    fit_rows: np.ndarray
    eval_rows: np.ndarray
    last_known: np.ndarray  # per row, the label of the bar `horizon` bars earlier (persistence's call)


def test_number(parent_cutoff: dt.datetime, interval_end: dt.datetime) -> int:
    """Which weekly test of a champion this is: the weeks from its cutoff to the refresh's interval end (the same
    for a rerun or a backfill of that week); recorded with the version."""
    return max(1, math.ceil((interval_end - parent_cutoff).total_seconds() / (7 * 86400)))


def split_window(rows: int, horizon: int, min_fit: int, min_eval: int,
                 bars_per_week: float | None = None) -> tuple[np.ndarray, np.ndarray] | str:
    """(fit rows, evaluation rows) of a window of `rows`, `horizon` rows apart; or why the window is too short and,
    given the timeframe's `bars_per_week`, how long until it is not (a champion serving that much longer)."""
    cut = int(rows * FIT_SHARE)
    fit_rows, eval_rows = np.arange(0, max(0, cut - horizon)), np.arange(cut, rows)
    if len(fit_rows) < min_fit or len(eval_rows) < min_eval:
        why = (f"{rows} resolved bars the base models never learned: {len(fit_rows)} to fit on and {len(eval_rows)} "
               f"to evaluate, need {min_fit} and {min_eval}")
        if bars_per_week:
            more = rows_needed(horizon, min_fit, min_eval) - rows
            weeks = math.ceil(more / bars_per_week)
            why += (f"; {more} more bar{'s' * (more != 1)}, about {weeks} more week{'s' * (weeks != 1)} of this "
                    "champion (a monthly retrain that promotes starts the count again)")
        return why
    return fit_rows, eval_rows


def rows_needed(horizon: int, min_fit: int, min_eval: int) -> int:
    """The fewest unseen resolved bars `split_window` can split."""
    rows = math.ceil((min_fit + horizon) / FIT_SHARE)
    while isinstance(split_window(rows, horizon, min_fit, min_eval), str):
        rows += 1
    return rows


def recent_window(parent: versions.LoadedModel, symbol: str, timeframe: str, interval_end: dt.datetime,
                  cfg: PipelineConfig) -> RecentWindow | str:
    """The refresh's window, or why there is none."""
    from market_mlops.model.ensemble_model import LAST_KNOWN_LABEL
    from market_mlops.model.labels import labels_and_usable_rows
    from market_mlops.monitoring.forecasts import feature_window, model_labels
    from market_mlops.tasks.promotion import learned_until, unseen_rows

    spec = cfg.spec(timeframe)
    horizon, labels = model_labels(parent.base.meta, cfg, timeframe)
    own, feats = feature_window(cfg, symbol, timeframe, interval_end - dt.timedelta(days=spec.refresh_lookback_days),
                                interval_end)
    label, usable = labels_and_usable_rows(feats, own["close"], parent.features, horizon, labels)
    usable &= (feats["ts"] < interval_end).to_numpy()
    usable[usable.to_numpy()] = unseen_rows(feats["ts"][usable], learned_until(parent, cfg), horizon)
    last_known = label.shift(horizon)[usable].tail(spec.refresh_window).to_numpy(dtype=float)
    window = feats[usable].tail(spec.refresh_window).reset_index(drop=True).assign(**{LAST_KNOWN_LABEL: last_known})
    split = split_window(len(window), horizon, max(30, cfg.training.refresh_min_rows), 20, spec.bars_per_year / 52)
    if isinstance(split, str):
        return split
    return RecentWindow(window, label[usable].tail(spec.refresh_window).to_numpy().astype(int),
                        own["close"][usable].tail(spec.refresh_window).to_numpy(dtype=float), *split, last_known)


def refresh_weights(symbol: str, timeframe: str, interval_end: dt.datetime, airflow_ctx: dict[str, str] | None = None,
                    cfg: PipelineConfig | None = None, horizon: int | None = None) -> TrainingSummary:
    """Refit the champion's ensemble weights on its newest resolved rows and gate them (`horizon`: which of the
    timeframe's models; default its main horizon's)."""
    from market_mlops.model.ensemble import fit_weights
    from market_mlops.model.ensemble_model import BaseModels
    from market_mlops.model.evaluation import baseline_probabilities, evaluate_holdout
    from market_mlops.tasks.promotion import apply_gate, evaluate_gate

    cfg = cfg or get_config()
    name = store.model_name(symbol, timeframe, horizon, cfg)
    parent = versions.load_verified(name, alias=aliases.CHAMPION, cfg=cfg)
    spec = cfg.spec(timeframe, int(parent.base.meta.get("horizon") or cfg.spec(timeframe, horizon).horizon))
    skipped: TrainingSummary = {"model": name, "symbol": symbol, "timeframe": timeframe, "horizon": spec.horizon,
                                "version": parent.version, "parent_version": parent.version}
    if not isinstance(parent.base, BaseModels):
        log.info("%s: champion v%s is a baseline: no ensemble weights to refresh", name, parent.version)
        return {**skipped, "skipped": "the champion is a baseline: no ensemble weights to refresh"}
    run_key = f"refresh-{store.model_slug(symbol, timeframe, spec.horizon, cfg)}-{interval_end:%Y%m%dT%H%M}" \
              f"-from-v{parent.version}"
    existing = store.find_run(run_key, cfg)
    recorded = existing.data.tags.get("mlops.summary") if existing is not None else None
    if recorded:  # a retried task: registered and gated already
        log.info("refresh %s already registered; not refitting", run_key)
        done: TrainingSummary = json.loads(recorded)
        return done

    win = recent_window(parent, symbol, timeframe, interval_end, cfg)
    if isinstance(win, str):
        log.info("%s v%s: weights not refreshed: %s", name, parent.version, win)
        return {**skipped, "skipped": win}
    base = parent.base.base_probas(win.features)
    order = parent.base.meta["order"]
    weights, method = fit_weights([base[m][win.fit_rows] for m in order], win.y[win.fit_rows],
                                  min_rows=cfg.training.refresh_min_rows, prior=np.asarray(parent.base.meta["weights"]),
                                  prior_rows=cfg.training.weight_prior_rows)
    proba = parent.predict_proba(win.features.iloc[win.eval_rows], weights)
    baselines = baseline_probabilities(win.y, win.eval_rows, win.fit_rows, spec.horizon, win.last_known)
    evaluation = evaluate_holdout(win.y, proba, win.closes, win.eval_rows, win.fit_rows, spec.horizon,
                                  spec.bars_per_year, win.last_known, baselines=baselines)

    parent_tags = store.client(cfg).get_run(parent.run_id).data.tags
    number = test_number(dt.datetime.fromisoformat(parent_tags["data.interval_end"]), interval_end)
    tags = {"mlops.run_key": run_key, "symbol": symbol, "timeframe": timeframe, "horizon": str(spec.horizon),
            "refresh.parent_version": parent.version,
            "refresh.parent_run_id": parent.run_id, "data.interval_end": interval_end.isoformat(),
            "data.version": parent_tags.get("data.version", "unknown"),
            "data.gx_result_id": parent_tags.get("data.gx_result_id", "unknown"),
            **{f"airflow.{k}": v for k, v in (airflow_ctx or {}).items()}}
    params = {"parent_version": parent.version, "weights_method": method, "window_rows": len(win.y),
              "fit_rows": len(win.fit_rows), "eval_rows": len(win.eval_rows),
              "eval_start": str(win.features["ts"].iloc[win.eval_rows[0]]),
              "eval_end": str(win.features["ts"].iloc[win.eval_rows[-1]]), "test_number": number,
              **{f"weight.{m}": float(w) for m, w in zip(order, weights, strict=True)}}
    if existing is not None and existing.info.status == "FINISHED":  # logged completely before a retry
        run_id = existing.info.run_id
    else:
        run_id = _log_refresh_run(existing.info.run_id if existing else None, run_key, tags, params, evaluation,
                                  parent, weights, win, cfg)

    registered = versions.version_of_run(name, run_id, cfg)
    gate = evaluate_gate(name, str(registered.version) if registered else None, win.features.iloc[win.eval_rows],
                         win.y[win.eval_rows], win.features["ts"].iloc[win.eval_rows], proba, evaluation,
                         baselines, spec.horizon, cfg=cfg, require_improvement=True, kind="refresh")
    lineage = {"refresh.parent_version": parent.version, versions.KIND_TAG: "model",
               **{k: parent.tags[k] for k in (versions.FIT_END_TAG, versions.EVALUATION_END_TAG) if k in parent.tags},
               versions.WEIGHTS_FIT_END_TAG: str(win.features["ts"].iloc[win.fit_rows[-1]])}
    mv = registered or versions.create_version(name, run_id, lineage, cfg,
                                               unsigned_tags={**gate.version_tags(), "gate.test_number": str(number)})
    decision = apply_gate(name, str(mv.version), gate, cfg)
    summary: TrainingSummary = {
        "model": name, "symbol": symbol, "timeframe": timeframe, "horizon": spec.horizon, "version": str(mv.version),
        "parent_version": parent.version, "run_id": run_id, "weights": [round(float(w), 3) for w in weights],
        "previous_weights": [round(float(w), 3) for w in parent.base.meta["weights"]],
        "eval_rows": int(len(win.eval_rows)), "accuracy": round(evaluation["model_accuracy"], 4),
        "log_loss": round(evaluation["model_log_loss"], 4), "test_number": number, **decision}
    store.client(cfg).set_tag(run_id, "mlops.summary", json.dumps(summary))
    log.info("refreshed %s: v%s from v%s, weights %s -> %s, eval log-loss %.4f, accuracy %.3f on %d rows -> %s "
             "(test %d of this champion, e-value %s of %s needed)", name, mv.version, parent.version,
             summary["previous_weights"], summary["weights"], summary["log_loss"], summary["accuracy"],
             len(win.eval_rows), decision["decision"], number, decision.get("skill_e_value"),
             decision.get("e_threshold"))
    return summary


def refresh_shard(shard: ChampionShard, interval_end: dt.datetime, airflow_ctx: dict[str, str] | None = None,
                  cfg: PipelineConfig | None = None) -> list[TrainingSummary]:
    """`refresh_weights` for each champion of a shard; raises `ShardFailed` naming the failures at the end."""
    from market_mlops.tasks.shards import run_shard
    from market_mlops.tasks.universe import model_label

    return run_shard(shard["champions"], model_label,
                     lambda c: refresh_weights(c["symbol"], c["timeframe"], interval_end, airflow_ctx, cfg,
                                               c.get("horizon")))


def _log_refresh_run(run_id: str | None, run_key: str, tags: dict[str, str], params: dict[str, Any],
                     evaluation: dict[str, Any], parent: versions.LoadedModel, weights: np.ndarray, win: RecentWindow,
                     cfg: PipelineConfig) -> str:
    """One MLflow run: the parent's base-model files byte for byte with the new weights, its drift reference (in a
    few batched calls, as the retrain's run)."""
    import time

    import mlflow
    from mlflow.entities import Metric, Param

    from market_mlops.model.ensemble_model import ARTIFACT_FILES, artifact_files, sha256_file

    client = store.client(cfg)
    parent_metrics = client.get_run(parent.run_id).data.metrics  # same base models: same drift reference
    reference_accuracy = float(parent_metrics.get("drift.reference_accuracy", parent_metrics.get(
        "holdout.model_accuracy", evaluation["model_accuracy"])))
    with mlflow.start_run(run_id=run_id, experiment_id=store.experiment_id(cfg), run_name=run_key, tags=tags) as run:
        run_id = str(run.info.run_id)
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "run" / "evaluation").mkdir(parents=True)
            (folder / "run" / "evaluation" / "holdout_metrics.json").write_text(json.dumps(evaluation, default=float))
            mlflow.artifacts.download_artifacts(run_id=parent.run_id, artifact_path="reference",
                                                dst_path=str(folder / "run"))
            mlflow.log_artifacts(str(folder / "run"))
            source = versions.download_model_files(parent.name, parent.version, folder / "parent")
            model_dir = folder / "model_files"
            model_dir.mkdir()
            files = artifact_files(source)
            for key in ("rf", "xgb", "lgbm"):  # the base models, byte for byte
                shutil.copy2(source / files[key], model_dir / files[key])
            meta = {**parent.base.meta, "weights": [float(w) for w in weights], "parent_version": parent.version}
            (model_dir / ARTIFACT_FILES["meta"]).write_text(json.dumps(meta, indent=2, sort_keys=True))
            checksums = {k: sha256_file(model_dir / f) for k, f in files.items()}
            (model_dir / "checksums.json").write_text(json.dumps(checksums, indent=2, sort_keys=True))
            model_id = versions.log_model_files(model_dir, win.features[parent.features].tail(3),
                                                cfg.training.model_artifacts)
        now = int(time.time() * 1000)
        metrics = [Metric(f"holdout.{k}", float(v), now, 0, model_id=model_id) for k, v in evaluation.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)]
        inherited = [Metric(REFERENCE_ROWS, float(parent_metrics[REFERENCE_ROWS]), now, 0, model_id=model_id)] \
            if REFERENCE_ROWS in parent_metrics else []
        client.log_batch(run_id, metrics=[*metrics, Metric("drift.reference_accuracy", reference_accuracy, now, 0,
                                                             model_id=model_id), *inherited])
        return run_id
