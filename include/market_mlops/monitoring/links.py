"""Where people open things: MLflow UI pages of runs and model versions, Airflow runs. Shared by alerts, reports and
the Airflow plugin (so it imports nothing heavy)."""

from __future__ import annotations

import os
from typing import Any

DEFAULT_MLFLOW_UI = "http://localhost:5000"
DEFAULT_AIRFLOW_UI = "http://localhost:8080"


def mlflow_ui_url(tracking_uri: str | None = None) -> str:
    """`MLOPS_MLFLOW_UI_URL`, else an http tracking URI (the server serves its UI), else localhost:5000."""
    url = os.environ.get("MLOPS_MLFLOW_UI_URL") or (tracking_uri if tracking_uri and tracking_uri.startswith("http")
                                                     else DEFAULT_MLFLOW_UI)
    return url.rstrip("/")


def airflow_ui_url() -> str:
    return configured_airflow_ui_url() or DEFAULT_AIRFLOW_UI


def configured_airflow_ui_url() -> str | None:
    """`AIRFLOW__API__BASE_URL` when set: where people open Airflow (None: no absolute link can be made)."""
    base = os.environ.get("AIRFLOW__API__BASE_URL")
    return base.rstrip("/") if base else None


def mlflow_run_url(run_id: str, base: str | None = None) -> str:
    return f"{(base or mlflow_ui_url()).rstrip('/')}/#/runs/{run_id}"


def mlflow_model_url(model: str, version: str, base: str | None = None) -> str:
    return f"{(base or mlflow_ui_url()).rstrip('/')}/#/models/{model}/versions/{version}"


def mlflow_versions_url(model: str, base: str | None = None) -> str:
    """The registered model's page: every version with the run that made it (a model's runs, filtered to it)."""
    return f"{(base or mlflow_ui_url()).rstrip('/')}/#/models/{model}"


def airflow_run_url(dag_id: str, run_id: str) -> str:
    return f"{airflow_ui_url()}/dags/{dag_id}/runs/{run_id}"


def mlflow_urls(result: Any, base: str | None = None) -> dict[str, str]:
    """MLflow UI URLs for a task result of this suite (a summary dict, or a shard's list of them: its first model);
    empty when it names nothing."""
    if isinstance(result, list) and result:
        result = result[0]
    if not isinstance(result, dict):
        return {}
    urls = {}
    run_id = result.get("run_id") or result.get("mlflow_run_id")
    if run_id:
        urls["run"] = mlflow_run_url(run_id, base)
    model, version = result.get("model"), result.get("version") or result.get("to")
    if model and version:
        urls["model"] = mlflow_model_url(model, str(version), base)
    return urls


MODELS_PAGE_PREFIX = "/mlops-models"  # where the `models_page` plugin mounts the Models pages in the api-server


def model_page_url(model: str) -> str | None:
    """The model's page in the Airflow UI; None unless the Airflow base URL is configured (a Slack message needs an
    absolute link)."""
    base = configured_airflow_ui_url()
    return f"{base}{MODELS_PAGE_PREFIX}/model/{model}" if base else None
