"""Airflow plugin: links from Airflow to MLflow.

- A menu entry "MLflow" opening the MLflow UI (`MLOPS_MLFLOW_UI_URL`, default http://localhost:5000).
- On every task that returned an MLflow run or a registered model version (retrain, weight refresh, drift check,
  rollback), the buttons "MLflow run" and "MLflow model" in the task's details.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink


def mlflow_ui_url() -> str:
    return os.environ.get("MLOPS_MLFLOW_UI_URL", "http://localhost:5000").rstrip("/")


def mlflow_urls(result: Any, base: str | None = None) -> dict[str, str]:
    """MLflow UI URLs for a task result of this suite (a summary dict); empty when it names nothing."""
    base = (base or mlflow_ui_url()).rstrip("/")
    if not isinstance(result, dict):
        return {}
    urls = {}
    run_id = result.get("run_id") or result.get("mlflow_run_id")
    if run_id:
        urls["run"] = f"{base}/#/runs/{run_id}"
    model, version = result.get("model"), result.get("version") or result.get("to")
    if model and version:
        urls["model"] = f"{base}/#/models/{model}/versions/{version}"
    return urls


class _MLflowLink(BaseOperatorLink):
    kind = "run"

    def get_link(self, operator, *, ti_key) -> str:
        from airflow.sdk import BaseXCom

        try:
            result = BaseXCom.get_value(ti_key=ti_key, key="return_value")
        except Exception:
            return ""
        return mlflow_urls(result).get(self.kind, "")


class MLflowRunLink(_MLflowLink):
    name = "MLflow run"
    kind = "run"


class MLflowModelLink(_MLflowLink):
    name = "MLflow model"
    kind = "model"


class MLflowLinksPlugin(AirflowPlugin):
    name = "mlflow_links"
    global_operator_extra_links = [MLflowRunLink(), MLflowModelLink()]
    external_views = [{"name": "MLflow", "href": mlflow_ui_url(), "destination": "nav", "icon": None}]
