"""The Celery workers' configuration: Airflow's own, plus the suite's libraries imported once per worker.

Airflow runs every task in a process forked from its Celery worker and imports some of its own modules before that
fork (the Celery provider's `import_modules` hook), so tasks do not pay for them. The suite's per-model tasks import
MLflow, scikit-learn, LightGBM, XGBoost and SciPy, and MLflow maps every installed package to its modules when it
logs a model: about 3 s of a mapped task that fits one model in 1 s (the cluster tier, `make bench-cluster`).
Imported here, in the worker before it forks, a task starts with them loaded. Not DVC nor Great Expectations: DVC's
log handler keeps the stream it was imported with, and a task process forked later writes its logs elsewhere (the
handler then fails the task); both serve one ingestion task a session, not a task per model.

Used by setting `AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=market_mlops.celery_worker.CELERY_CONFIG` (docker-compose
does, for every Airflow service: only a worker fires the hook).
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import import_modules

log = logging.getLogger(__name__)

CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)

# What the suite's tasks import when they run (each task imports lazily, so DAG parsing stays fast).
TASK_LIBRARIES = (
    "pandas", "pyarrow.parquet", "scipy.stats", "sklearn.ensemble", "lightgbm", "xgboost",
    "mlflow", "mlflow.pyfunc", "mlflow.models", "mlflow.store.artifact.mlflow_artifacts_repo",
    "sqlalchemy", "boto3",
    "market_mlops.tasks.ingestion", "market_mlops.tasks.retrain", "market_mlops.tasks.refresh",
    "market_mlops.tasks.drift_check", "market_mlops.tasks.promotion", "market_mlops.tasks.baseline",
    "market_mlops.tasks.retention", "market_mlops.tasks.report", "market_mlops.model.training",
    "market_mlops.model.ensemble_model", "market_mlops.monitoring.forecasts", "market_mlops.monitoring.drift",
    "market_mlops.registry.versions",
)


def preload_task_libraries() -> dict[str, float]:
    """Import `TASK_LIBRARIES` (a missing one is skipped: a worker without it fails only the tasks that need it)
    and warm MLflow's map of installed packages; returns seconds by step."""
    seconds = {}
    start = time.perf_counter()
    for name in TASK_LIBRARIES:
        try:
            importlib.import_module(name)
        except ImportError as error:
            log.warning("worker preload: %s not importable (%s); tasks that need it will fail", name, error)
    seconds["imports"] = time.perf_counter() - start
    start = time.perf_counter()
    try:  # what mlflow.pyfunc.log_model computes on every new process to check a model's pinned requirements
        from mlflow.utils.requirements_utils import _init_modules_to_packages_map

        _init_modules_to_packages_map()
    except (ImportError, AttributeError):  # a later MLflow renamed it: tasks compute it themselves, as before
        pass
    seconds["mlflow_package_map"] = time.perf_counter() - start
    start = time.perf_counter()
    try:  # the MLflow client's registries of plugins (every installed package's entry points), built on a process's
        # first request: 0.03 s of each task's first round trip, measured against a warm server
        import mlflow.store.artifact.artifact_repository_registry  # noqa: F401
        import mlflow.tracking.request_header.registry  # noqa: F401
        from mlflow.tracking._model_registry.utils import _get_store_registry

        _get_store_registry()
    except (ImportError, AttributeError):  # a later MLflow moved them: tasks build them themselves, as before
        pass
    seconds["mlflow_registries"] = time.perf_counter() - start
    return seconds


@import_modules.connect
def _on_import_modules(*args: Any, **kwargs: Any) -> None:
    seconds = preload_task_libraries()
    log.info("worker preload: task libraries imported in %.1f s, MLflow package map %.1f s, its plugin registries "
             "%.2f s", seconds["imports"], seconds["mlflow_package_map"], seconds["mlflow_registries"])
