"""Airflow plugin: links from Airflow to MLflow.

- A menu entry "MLflow" opening the MLflow UI (`MLOPS_MLFLOW_UI_URL`, default http://localhost:5000).
- On every task that returned an MLflow run or a registered model version (retrain, weight refresh, drift check,
  rollback), the buttons "MLflow run" and "MLflow model" in the task's details.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink

from market_mlops.monitoring.links import mlflow_ui_url, mlflow_urls

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


def task_result(ti_key: TaskInstanceKey) -> object:
    """A task's return value, read from the metadata DB the way the api-server reads XComs (the Task SDK's XCom
    client needs a running task's supervisor, which the api-server does not have)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(key="return_value", run_id=ti_key.run_id, dag_ids=ti_key.dag_id,
                               task_ids=ti_key.task_id, map_indexes=ti_key.map_index).with_only_columns(XComModel.value)
        ).first()
    if row is None:
        return None
    value = row.value
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class _MLflowLink(BaseOperatorLink):
    kind = "run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return mlflow_urls(task_result(ti_key)).get(self.kind, "")


class MLflowRunLink(_MLflowLink):
    name = "MLflow run"
    kind = "run"


class MLflowModelLink(_MLflowLink):
    name = "MLflow model"
    kind = "model"


class MLflowLinksPlugin(AirflowPlugin):
    name = "mlflow_links"
    global_operator_extra_links = [MLflowRunLink(), MLflowModelLink()]
    # Airflow 3.3 draws a top-level `nav` view of an outside URL as a button that does nothing; in a category it is
    # a link. The URL comes from MLOPS_MLFLOW_UI_URL (where people open MLflow, not where tasks reach it).
    external_views = [{"name": "MLflow", "href": mlflow_ui_url(), "destination": "nav", "category": "browse",
                       "icon": None}]
