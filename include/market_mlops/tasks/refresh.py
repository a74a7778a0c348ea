"""Weekly ensemble-weight refresh of one champion: same base models, new weights from the most recent window.

The recent window (labels resolved by the interval end) is split in time: weights are fitted on its earlier part,
and the gate scores the result on its later part (bars not used to fit the weights), separated by `horizon` rows.
The new version reuses the champion's base-model files byte for byte (same checksums) and records its parent.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from market_mlops.config import PipelineConfig, get_config
from market_mlops.registry import aliases, store, versions

log = logging.getLogger(__name__)
REFRESH_WINDOW = {"d1": 250, "h4": 500, "h1": 1000, "m15": 2000}
FIT_SHARE = 0.6


def refresh_weights(symbol: str, timeframe: str, interval_end: dt.datetime, airflow_ctx: dict[str, str] | None = None,
                    cfg: PipelineConfig | None = None) -> dict[str, Any]:
    import mlflow

    from market_mlops.model.ensemble import fit_weights
    from market_mlops.model.ensemble_model import ARTIFACT_FILES, sha256_file
    from market_mlops.model.evaluation import evaluate_with_baselines
    from market_mlops.model.labels import direction_labels
    from market_mlops.monitoring.forecasts import feature_window
    from market_mlops.tasks.promotion import promote_if_better

    cfg = cfg or get_config()
    spec = cfg.spec(timeframe)
    name = store.model_name(symbol, timeframe)
    c = store.client(cfg)
    parent = versions.load_verified(name, alias=aliases.CHAMPION, cfg=cfg)
    run_key = f"refresh-{symbol}-{timeframe}-{interval_end:%Y%m%dT%H%M}-from-v{parent.version}"
    exp_id = store.experiment_id(cfg)
    existing = store.find_run(run_key, cfg)
    if existing is not None and existing.info.status == "FINISHED" and versions.version_of_run(name, existing.info.run_id, cfg):
        log.info("refresh %s already registered; not refitting", run_key)
        return json.loads(existing.data.tags.get("mlops.summary", "{}"))

    size = REFRESH_WINDOW[timeframe]
    days = size * (1.6 if timeframe == "d1" else 0.25 if timeframe == "h1" else 0.5 if timeframe == "h4" else 0.07)
    own, feats = feature_window(cfg, symbol, timeframe, interval_end - dt.timedelta(days=days), interval_end)
    labels = direction_labels(own["close"], spec.horizon, spec.threshold)
    usable = feats[parent.base.features].notna().all(axis=1) & labels.notna()
    window = feats[usable].tail(size).reset_index(drop=True)
    y = labels[usable].tail(size).to_numpy().astype(int)
    closes = own["close"][usable].tail(size).to_numpy(dtype=float)
    cut = int(len(y) * FIT_SHARE)
    fit_rows, eval_rows = np.arange(0, cut - spec.horizon), np.arange(cut, len(y))
    if len(fit_rows) < 30 or len(eval_rows) < 20:
        raise ValueError(f"{name}: only {len(y)} resolved bars before {interval_end:%Y-%m-%d}; need more history to refresh")

    base = parent.base.base_probas(window)
    order = parent.base.meta["order"]
    weights, method = fit_weights([base[m][fit_rows] for m in order], y[fit_rows])
    proba = parent.predict_proba(window.iloc[eval_rows], weights)
    fwd = np.zeros(len(closes))
    fwd[:-spec.horizon] = closes[spec.horizon:] / closes[:-spec.horizon] - 1
    next_bar = np.append(closes[1:] / closes[:-1] - 1, 0.0)
    evaluation = evaluate_with_baselines(y[eval_rows], proba, int(np.bincount(y[fit_rows], minlength=3).argmax()),
                                         y[np.maximum(eval_rows - spec.horizon, 0)], fwd[eval_rows], next_bar[eval_rows])

    parent_run = c.get_run(parent.run_id)
    tags = {"mlops.run_key": run_key, "symbol": symbol, "timeframe": timeframe, "refresh.parent_version": parent.version,
            "refresh.parent_run_id": parent.run_id, "data.interval_end": interval_end.isoformat(),
            "data.version": parent_run.data.tags.get("data.version", "unknown"),
            "data.gx_result_id": parent_run.data.tags.get("data.gx_result_id", "unknown"),
            **{f"airflow.{k}": v for k, v in (airflow_ctx or {}).items()}}
    with mlflow.start_run(run_id=existing.info.run_id if existing else None, experiment_id=exp_id, run_name=run_key, tags=tags) as run:
        mlflow.log_params({"parent_version": parent.version, "weights_method": method, "window_rows": len(y),
                           "fit_rows": len(fit_rows), "eval_rows": len(eval_rows),
                           "eval_start": str(window["ts"].iloc[eval_rows[0]]), "eval_end": str(window["ts"].iloc[eval_rows[-1]]),
                           **{f"weight.{m}": float(w) for m, w in zip(order, weights, strict=True)}})
        mlflow.log_metrics({f"holdout.{k}": float(v) for k, v in evaluation.items() if isinstance(v, int | float)})
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            source = Path(mlflow.artifacts.download_artifacts(run_id=parent.run_id, artifact_path="model/artifacts",
                                                              dst_path=str(folder / "parent")))
            model_dir = folder / "model_files"
            model_dir.mkdir()
            for key in ("rf", "xgb", "lgbm"):  # the base models, byte for byte
                shutil.copy2(source / ARTIFACT_FILES[key], model_dir / ARTIFACT_FILES[key])
            meta = {**parent.base.meta, "weights": [float(w) for w in weights], "parent_version": parent.version}
            (model_dir / ARTIFACT_FILES["meta"]).write_text(json.dumps(meta, indent=2, sort_keys=True))
            checksums = {k: sha256_file(model_dir / f) for k, f in ARTIFACT_FILES.items()}
            (model_dir / "checksums.json").write_text(json.dumps(checksums, indent=2, sort_keys=True))
            reference = mlflow.artifacts.download_artifacts(run_id=parent.run_id, artifact_path="reference",
                                                            dst_path=str(folder / "reference"))
            mlflow.log_artifacts(reference, "reference")
            (folder / "holdout_metrics.json").write_text(json.dumps(evaluation, indent=2, default=float))
            mlflow.log_artifact(str(folder / "holdout_metrics.json"), "evaluation")
            versions.log_pyfunc_ensemble(model_dir, window[parent.base.features].tail(3))
        run_id = run.info.run_id

    mv = versions.register_version(name, run_id, {"refresh.parent_version": parent.version}, cfg)
    decision = promote_if_better(name, str(mv.version), window.iloc[eval_rows], y[eval_rows], proba, evaluation, cfg=cfg)
    summary = {"model": name, "symbol": symbol, "timeframe": timeframe, "version": str(mv.version),
               "parent_version": parent.version, "run_id": run_id, "weights": [round(float(w), 3) for w in weights],
               "previous_weights": [round(float(w), 3) for w in parent.base.meta["weights"]],
               "eval_rows": int(len(eval_rows)), "accuracy": round(evaluation["model_accuracy"], 4),
               "majority_accuracy": round(evaluation["majority_accuracy"], 4),
               "persistence_accuracy": round(evaluation["persistence_accuracy"], 4), **decision}
    c.set_tag(run_id, "mlops.summary", json.dumps(summary))
    log.info("refreshed %s: v%s from v%s, weights %s -> %s, eval accuracy %.3f -> %s", name, mv.version, parent.version,
             summary["previous_weights"], summary["weights"], summary["accuracy"], decision["decision"])
    return summary
