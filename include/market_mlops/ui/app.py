"""The Models pages as a FastAPI app that Airflow's api-server mounts (plugin `models_page`). Only people logged in
to Airflow see them (the UI's token cookie, checked by Airflow's own dependency). Reads: the registry and the SQL
store for the list; for one model, also its alias moves, its last drift report, forecasts and the champion's
holdout artifacts. Anything that cannot be read is said on the page, not hidden."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse

from market_mlops.config import PipelineConfig, get_config
from market_mlops.monitoring.links import configured_airflow_ui_url
from market_mlops.ui import fleet, pages

log = logging.getLogger(__name__)


def _signed_in() -> Any:
    """Airflow's `get_user` (JWT from the Authorization header or the UI's cookie); absent outside Airflow."""
    try:
        from airflow.api_fastapi.core_api.security import get_user
    except ImportError:  # pragma: no cover - the app always runs inside Airflow's api-server
        return None
    return get_user


def _public_base() -> str:
    """Links back into Airflow: relative to the api-server the page is served by, unless a base URL is set."""
    return configured_airflow_ui_url() or ""


def create_app() -> FastAPI:
    app = FastAPI(title="Market MLOps models", docs_url=None, redoc_url=None, openapi_url=None)
    user = _signed_in()
    guard = [Depends(user)] if user is not None else []

    @app.get("/", response_class=HTMLResponse, dependencies=guard)
    def models(sort: str = Query("attention"), band: str | None = Query(None)) -> str:
        cfg = get_config()
        rows = fleet.sort_and_filter(fleet.fleet(cfg), sort, band or None)
        log.info("models page: %d rows (sort %s, band %s)", len(rows), sort, band or "all")
        from market_mlops.monitoring.consensus import latest_consensus

        return pages.models_page(rows, dt.datetime.now(dt.UTC), sort, band, _public_base(), latest_consensus(cfg),
                                 cfg.drift.min_outcomes, failed_checks(rows, cfg))

    @app.get("/model/{name}", response_class=HTMLResponse, dependencies=guard)
    def model(name: str) -> str:
        from market_mlops.monitoring.history import drift_history

        cfg = get_config()
        versions = fleet.registry_versions(cfg, name)
        if not versions:
            raise HTTPException(404, f"no registered model {name!r}: train it with the model_retrain DAG")
        checks = drift_history(cfg, name)
        detail = model_detail(fleet.model_rows([], versions, checks)[0], versions, checks, cfg)
        return pages.model_page(detail, dt.datetime.now(dt.UTC), cfg.drift, _public_base())

    @app.get("/report/{run_id}", response_class=HTMLResponse, dependencies=guard)
    def report(run_id: str) -> str:
        """A drift check's HTML report (the artifact of its MLflow run), where the model's page links to it."""
        import mlflow

        from market_mlops.registry import store

        store.client(get_config())  # points MLflow at the suite's tracking store
        try:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="drift/drift_report.html")
        except Exception as exc:  # an unknown run or a missing artifact: say which
            raise HTTPException(404, f"no drift report in MLflow run {run_id!r}: {exc.__class__.__name__}") from None
        return Path(path).read_text()

    return app


def failed_checks(rows: list[fleet.ModelRow], cfg: PipelineConfig) -> list[str]:
    """The drift checks refused since the newest recorded one (stale data: no model's band was measured), from the
    alert outbox: a failed check leaves no row per model, so the page says it here."""
    from market_mlops.monitoring.alerts import Outbox

    newest = max((r.last_check for r in rows if r.last_check), default="")
    out = []
    for record in Outbox(cfg).records():
        alert = record.get("alert") or {}
        if alert.get("kind") != "staleness" or not str(alert.get("title", "")).startswith("Stale data:"):
            continue
        session = str((alert.get("facts") or {}).get("session_close", ""))
        if session[:10] > newest[:10]:
            out.append(f"{alert['title']} for the session closing {session} UTC: {' '.join(alert.get('lines') or [])}")
    return out[-3:]


def model_detail(row: fleet.ModelRow, versions: list[fleet.VersionInfo], checks: list[dict[str, Any]],
                 cfg: PipelineConfig) -> pages.ModelDetail:
    from market_mlops.registry.aliases import CHALLENGER, CHAMPION, alias_history

    moves = sorted(alias_history(row.model, CHAMPION, cfg) + alias_history(row.model, CHALLENGER, cfg),
                   key=lambda m: str(m["when"]))
    detail = pages.ModelDetail(row=row, checks=checks, moves=moves, all_versions=versions)
    for what, read in (("the last drift report", _drift_features), ("forecasts", _forecasts),
                       ("the champion's holdout artifacts", _holdout)):
        try:
            read(detail, cfg)
        except Exception as exc:  # one missing piece is a note on the page, the rest still shows
            log.warning("model page %s: cannot read %s: %s", row.model, what, exc)
            detail.notes.append(f"Could not read {what}: {exc.__class__.__name__}: {str(exc)[:200]}")
    return detail


def _drift_features(detail: pages.ModelDetail, cfg: PipelineConfig) -> None:
    import mlflow

    if detail.row.drift_run_id:
        path = mlflow.artifacts.download_artifacts(run_id=detail.row.drift_run_id,
                                                   artifact_path="drift/drift_report.json")
        detail.features = list(json.loads(Path(path).read_text()).get("features", []))


def _forecasts(detail: pages.ModelDetail, cfg: PipelineConfig, last: int = 30) -> None:
    from market_mlops.data.dataset import load_bars
    from market_mlops.data.versioning import head_dataset
    from market_mlops.monitoring.forecasts import load_forecasts, resolved_forecasts

    r = detail.row
    recent = load_forecasts(r.symbol, r.timeframe, cfg, model_name=r.model, role="champion").sort_values("ts").tail(last)
    if recent.empty:
        return
    spec = cfg.spec(r.timeframe, int(recent["horizon"].iloc[-1]))
    bars = load_bars(head_dataset(cfg), r.timeframe, [r.symbol],  # the warm-up: the label band reads earlier bars
                     since=recent["ts"].iloc[0].to_pydatetime() - dt.timedelta(days=spec.warmup_days))
    resolved = resolved_forecasts(recent, bars, spec.horizon, cfg.labels_of(r.symbol, r.timeframe))
    # Two versions can forecast the same bar (a new champion scores from its own cutoff): key by both.
    outcome = {(r["ts"], str(r["model_version"])): r for r in resolved.to_dict("records")}
    from market_mlops.monitoring.drivers import load_drivers

    drivers = {(d["ts"], str(d["model_version"])): d["top"] for d in load_drivers(r.symbol, r.timeframe, r.model, cfg)
               .to_dict("records")}
    baseline = str(r.champion.version) if r.champion and r.champion.tags.get("kind") == "baseline" else None
    rows = recent.to_dict("records")
    for f in rows:
        found = outcome.get((f["ts"], str(f["model_version"])))
        if found is not None:
            f["realized"] = found["realized"]
            f["correct"] = bool(found["correct"])
        f["drivers"] = drivers.get((f["ts"], str(f["model_version"])))
        f["baseline"] = str(f["model_version"]) == baseline
    detail.forecasts = list(reversed(rows))


def _holdout(detail: pages.ModelDetail, cfg: PipelineConfig) -> None:
    import mlflow
    import pandas as pd

    champion = detail.row.champion or detail.row.latest
    if champion is None:
        return
    metrics = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=champion.run_id, artifact_path="evaluation/holdout_metrics.json")).read_text())
    detail.confusion = metrics.get("model_confusion")
    if champion.tags.get("kind") == "baseline":  # a rule: no features, no importance; say what it is instead
        detail.baseline = describe_baseline(champion, metrics, detail.row.challenger)
        return
    # A weekly refresh keeps its parent's base models and logs no importance: the newest version that has one.
    for source in sorted(_versions_up_to(detail, champion), key=lambda v: -int(v.version)):
        try:
            path = mlflow.artifacts.download_artifacts(run_id=source.run_id,
                                                       artifact_path="evaluation/feature_importance.csv")
        except mlflow.exceptions.MlflowException:
            continue
        importance = pd.read_csv(path, index_col=0).iloc[:, 0]
        detail.importance = [(str(k), float(v)) for k, v in importance.sort_values(ascending=False).items()]
        if source.version != champion.version:
            detail.notes.append(f"Feature importance of v{source.version}, whose base models v{champion.version} "
                                "refreshed the weights of.")
        return


def describe_baseline(champion: fleet.VersionInfo, metrics: dict[str, Any],
                      challenger: fleet.VersionInfo | None) -> list[str]:
    """What a baseline champion predicts, its holdout, and where the trained model it serves instead of stands."""
    rule = champion.tags.get("baseline.rule", "")
    predicts = {"climatology": "the class shares of the rows its model learned, the same every session",
                "persistence": "the class shares that followed each last known label (the label of the bar a horizon "
                               "earlier), so its forecast moves with that label"}.get(rule, rule)
    lines = [f"v{champion.version} is the {rule} baseline: it forecasts {predicts}; never a probability of 0 or 1."]
    loss, climatology = metrics.get("model_log_loss"), metrics.get("climatology_log_loss")
    if loss is not None:
        lines.append(f"Its holdout: log-loss {float(loss):.4f}"
                     + (f" (climatology {float(climatology):.4f})" if climatology is not None else "")
                     + f", accuracy {float(metrics.get('model_accuracy', float('nan'))):.1%}.")
    if challenger is not None and challenger.version != champion.version:
        reason = challenger.tags.get("gate.reason", "")
        lines.append(f"The trained model v{challenger.version} is its challenger, forecasting in shadow"
                     + (f"; its gate said: {reason}" if reason else "") + ".")
    return lines


def _versions_up_to(detail: pages.ModelDetail, champion: fleet.VersionInfo) -> list[fleet.VersionInfo]:
    return [v for v in detail.all_versions if int(v.version) <= int(champion.version)] or [champion]
