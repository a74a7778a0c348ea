"""The weekday drift check of one champion: forecasts, realized accuracy band, feature and prediction drift, a report
in MLflow, a drift history, Slack alerts, and the decision to trigger an emergency retrain (with a cooldown).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market_mlops.config import PipelineConfig, get_config
from market_mlops.data.storage import append_jsonl, read_jsonl
from market_mlops.registry import aliases, store, versions

log = logging.getLogger(__name__)
DRIFT_EXPERIMENT = "market-drift"


def champions(cfg: PipelineConfig | None = None, symbols: list[str] | None = None,
              timeframes: list[str] | None = None) -> list[dict[str, str]]:
    """(symbol, timeframe) pairs of the universe whose registered model has a champion."""
    cfg = cfg or get_config()
    c = store.client(cfg)
    out = []
    for symbol, timeframe in cfg.pairs(symbols, timeframes):
        try:
            version = c.get_model_version_by_alias(store.model_name(symbol, timeframe), aliases.CHAMPION).version
        except Exception:
            continue
        out.append({"symbol": symbol, "timeframe": timeframe, "version": str(version)})
    return out


def history_path(cfg: PipelineConfig) -> Path:
    return cfg.path("drift/history.jsonl")


def drift_history(cfg: PipelineConfig | None = None, model: str | None = None) -> list[dict[str, Any]]:
    records = read_jsonl(history_path(cfg or get_config()))
    return [r for r in records if model is None or r["model"] == model]


def in_cooldown(model: str, interval_end: dt.datetime, cfg: PipelineConfig) -> bool:
    """An emergency retrain of `model` was triggered within `cooldown_days` before this interval's end."""
    window_start = interval_end - dt.timedelta(days=cfg.drift.cooldown_days)
    for record in drift_history(cfg, model):
        if record.get("emergency_retrain_triggered"):
            when = dt.datetime.fromisoformat(record["interval_end"])
            if window_start < when <= interval_end:
                return True
    return False


def _links(cfg: PipelineConfig, name: str, version: str, airflow_ctx: dict[str, str]) -> dict[str, str]:
    links = {}
    airflow_ui = os.environ.get("AIRFLOW__API__BASE_URL", "http://localhost:8080").rstrip("/")
    if airflow_ctx.get("dag_id") and airflow_ctx.get("run_id"):
        links["Airflow run"] = f"{airflow_ui}/dags/{airflow_ctx['dag_id']}/runs/{airflow_ctx['run_id']}"
    mlflow_ui = os.environ.get("MLOPS_MLFLOW_UI_URL") or (cfg.mlflow_tracking_uri if cfg.mlflow_tracking_uri.startswith("http") else "http://localhost:5000")
    links["MLflow model"] = f"{mlflow_ui.rstrip('/')}/#/models/{name}/versions/{version}"
    return links


def _render_html(report: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{html.escape(f['feature'])}</td><td>{f['psi']}</td><td>{f['psi_limit']}</td><td>{f['ks']}</td>"
                   f"<td>{'yes' if f['drifted'] else ''}</td></tr>"
                   for f in report["features"][:30])
    facts = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in report.items() if not isinstance(v, list | dict))
    return (f"<html><head><meta charset='utf-8'><title>Drift {html.escape(report['model'])}</title></head><body>"
            f"<h1>Drift report: {html.escape(report['model'])} v{report['version']}</h1><table>{facts}</table>"
            f"<h2>Features (PSI, KS)</h2><table><tr><th>feature</th><th>PSI</th><th>PSI limit</th><th>KS</th><th>drifted</th></tr>{rows}</table>"
            "</body></html>")


def _log_report(cfg: PipelineConfig, report: dict[str, Any]) -> str:
    import mlflow

    key = f"drift-{report['model']}-{report['interval_end'][:16]}"
    exp = store.experiment_id(cfg, DRIFT_EXPERIMENT)
    existing = store.client(cfg).search_runs([exp], filter_string=f"tags.`mlops.run_key` = '{key}'")
    with mlflow.start_run(run_id=existing[0].info.run_id if existing else None, experiment_id=exp, run_name=key,
                          tags={"mlops.run_key": key, "model": report["model"], "model_version": report["version"],
                                "band": report["band"]}) as run:
        mlflow.log_metrics({k: float(v) for k, v in report.items()
                            if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)})
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "drift_report.json").write_text(json.dumps(report, indent=2, default=str))
            (Path(tmp) / "drift_report.html").write_text(_render_html(report))
            mlflow.log_artifacts(tmp, "drift")
        return run.info.run_id


def check_model_drift(symbol: str, timeframe: str, interval_start: dt.datetime, interval_end: dt.datetime,
                      airflow_ctx: dict[str, str] | None = None, cfg: PipelineConfig | None = None) -> dict[str, Any]:
    """Forecast, measure, report and alert for one champion; returns the result (and whether to retrain)."""
    import mlflow

    from market_mlops.data.dataset import load_bars
    from market_mlops.monitoring.alerts import Alert, send_alert
    from market_mlops.monitoring.drift import (
        NULL_THRESHOLDS_FILE,
        accuracy_band,
        feature_drift,
        psi_from_shares,
        usable_null_thresholds,
    )
    from market_mlops.monitoring.forecasts import (
        class_shares,
        feature_window,
        load_forecasts,
        resolved_forecasts,
        score_and_store,
    )

    cfg = cfg or get_config()
    airflow_ctx = airflow_ctx or {}
    name = store.model_name(symbol, timeframe)
    model = versions.load_verified(name, alias=aliases.CHAMPION, cfg=cfg)
    run = store.client(cfg).get_run(model.run_id)
    cutoff = dt.datetime.fromisoformat(run.data.tags["data.interval_end"])
    holdout_accuracy = float(run.data.metrics["holdout.model_accuracy"])
    spec = cfg.spec(timeframe)

    # 1. Forecasts for every bar after the training cutoff up to this interval (upsert: reruns change nothing).
    scored = score_and_store(model, symbol, timeframe, cutoff, interval_end, cfg)

    # 2. Realized accuracy over the last `window` resolved forecasts of this champion version.
    bars = load_bars(cfg.data_root / "dataset", timeframe, [symbol], until=interval_end)
    forecasts = load_forecasts(symbol, timeframe, cfg)
    mine = forecasts[(forecasts["model_version"] == model.version) & (forecasts["ts"] < pd.Timestamp(interval_end))]
    resolved = resolved_forecasts(mine, bars, spec.horizon, spec.threshold).tail(cfg.drift.window)
    realized = float(resolved["correct"].mean()) if len(resolved) else float("nan")
    delta = (realized - holdout_accuracy) * 100 if len(resolved) else float("nan")
    band = accuracy_band(delta, len(resolved), cfg.drift)

    # 3. Feature drift against the training reference stored with the model; drift of predicted classes.
    reference = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=model.run_id,
                                                                    artifact_path="reference/reference_features.parquet"))
    _own, feats = feature_window(cfg, symbol, timeframe, interval_end - dt.timedelta(days=120), interval_end)
    current = feats[model.base.features].dropna().tail(cfg.drift.window)
    try:
        stored = json.loads(Path(mlflow.artifacts.download_artifacts(
            run_id=model.run_id, artifact_path=f"reference/{NULL_THRESHOLDS_FILE}")).read_text())
    except (OSError, mlflow.exceptions.MlflowException):  # a model trained before limits were stored
        stored = None
    drifts = feature_drift(reference, current, cfg.drift, usable_null_thresholds(stored, len(current), cfg.drift))
    holdout_metrics = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=model.run_id, artifact_path="evaluation/holdout_metrics.json")).read_text())
    reference_shares = np.asarray(holdout_metrics["model_confusion"]).sum(axis=0)
    recent_predictions = mine.sort_values("ts").tail(cfg.drift.window)["predicted"]
    prediction_psi = psi_from_shares(reference_shares, class_shares(recent_predictions)) if len(recent_predictions) else float("nan")

    drifted = [d for d in drifts if d.drifted]
    emergency = band == "emergency"
    cooldown = emergency and in_cooldown(name, interval_end, cfg)
    trigger = emergency and not cooldown
    report = {
        "model": name, "version": model.version, "symbol": symbol, "timeframe": timeframe,
        "interval_start": interval_start.isoformat(), "interval_end": interval_end.isoformat(),
        "band": band, "realized_accuracy": round(realized, 4) if np.isfinite(realized) else realized,
        "holdout_accuracy": round(holdout_accuracy, 4), "delta_points": round(delta, 2) if np.isfinite(delta) else delta,
        "resolved": int(len(resolved)), "forecasts_scored": int(len(scored)),
        "features_drifted": len(drifted), "features_checked": len(drifts),
        "max_psi": max((d.psi for d in drifts if np.isfinite(d.psi)), default=0.0),
        "prediction_psi": round(prediction_psi, 4) if np.isfinite(prediction_psi) else prediction_psi,
        "emergency_retrain_triggered": trigger, "in_cooldown": cooldown,
        "features": [d.__dict__ for d in drifts],
    }
    report["mlflow_run_id"] = _log_report(cfg, report)
    append_jsonl({k: v for k, v in report.items() if k != "features"} |
                 {"top_features": [d.feature for d in drifted[:5]], "airflow_run_id": airflow_ctx.get("run_id", "")},
                 history_path(cfg))
    log.info("drift %s v%s: band %s, realized %.3f vs holdout %.3f (%s pts, %d resolved), %d/%d features drifted, "
             "prediction PSI %s", name, model.version, band, realized, holdout_accuracy, report["delta_points"],
             len(resolved), len(drifted), len(drifts), report["prediction_psi"])

    feature_alarm = len(drifts) > 0 and len(drifted) / len(drifts) >= cfg.drift.feature_share_alert
    if band in ("drift", "emergency") or feature_alarm:
        severity = "critical" if band == "emergency" else "warning"
        title = f"Accuracy {band}: {name} v{model.version}" if band in ("drift", "emergency") else \
            f"Feature drift: {name} v{model.version} ({len(drifted)}/{len(drifts)} features)"
        lines = [f"{d.feature}: PSI {d.psi} (limit {d.psi_limit}), KS {d.ks}" for d in drifted[:5]]
        if trigger:
            lines.append("emergency retrain triggered")
        elif cooldown:
            lines.append(f"emergency retrain skipped: one ran within {cfg.drift.cooldown_days} days")
        send_alert(Alert(
            title=title, severity=severity, kind="drift",
            facts={"symbol": symbol, "timeframe": timeframe, "band": band,
                   "accuracy": report["realized_accuracy"], "baseline": report["holdout_accuracy"],
                   "delta_pts": report["delta_points"], "resolved": report["resolved"]},
            lines=lines, links=_links(cfg, name, model.version, airflow_ctx)))
    return xcom_safe({k: v for k, v in report.items() if k != "features"})


def xcom_safe(result: dict[str, Any]) -> dict[str, Any]:
    """NaN (no resolved forecast yet, e.g. right after a new champion) as None: XCom is strict JSON and refuses it."""
    return {k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in result.items()}


def emergency_retrain_confs(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conf of each retrain to trigger: one model, training data up to the drift check's interval end."""
    return [{"symbols": [r["symbol"]], "timeframes": [r["timeframe"]], "until": r["interval_end"],
             "reason": f"emergency: {r['model']} v{r['version']} {r['delta_points']} pts"}
            for r in results if r and r.get("emergency_retrain_triggered")]
