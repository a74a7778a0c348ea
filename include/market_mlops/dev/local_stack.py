"""The embedded stack: Airflow on SQLite, MLflow on SQLite, DVC with a local remote, all under MLOPS_HOME.

`configure_environment` must run before Airflow is imported. It only fills variables the user has not set, so
the same code runs against Postgres, an MLflow server or MinIO when the environment says so.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from market_mlops.config import REPO_ROOT

if TYPE_CHECKING:
    from airflow.models import DagRun
    from airflow.sdk import DAG


def stack_environment(home: Path) -> dict[str, str]:
    airflow_home = home / "airflow"
    return {
        "MLOPS_HOME": str(home),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "GIT_PYTHON_REFRESH": "quiet",
        "MLOPS__TRAINING__FITS_PER_WORKER": "1",  # dag.test runs one task at a time: each fit may use every core
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT / "plugins"), os.environ.get("PYTHONPATH", "")) if p),
    }


def configure_environment(home: Path | None = None, override: bool = False) -> dict[str, str]:
    home = Path(home or os.environ.get("MLOPS_HOME") or REPO_ROOT / ".state").resolve()
    env = stack_environment(home)
    for key, value in env.items():
        if override or key not in os.environ:
            os.environ[key] = value
    (home / "airflow").mkdir(parents=True, exist_ok=True)
    plugins = str(REPO_ROOT / "plugins")
    if plugins not in sys.path:
        sys.path.insert(0, plugins)
    return env


def airflow_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "airflow", *args], check=check, capture_output=True, text=True,
                          env=os.environ.copy())


def ensure_airflow_db() -> None:
    """Migrate the metadata DB (idempotent) and create the pools the DAGs use."""
    result = airflow_cli("db", "migrate", check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"airflow db migrate failed: {tail[0]}")
    from market_mlops.orchestration import ensure_pools

    ensure_pools()


def run_dag_in_process(dag: DAG, logical_date: dt.datetime, conf: dict[str, Any], log_path: str,
                       run_after: dt.datetime | None = None) -> tuple[str, float]:
    """One `dag.test()` run (no scheduler); Airflow's output goes to `log_path`, not the terminal."""
    started = time.perf_counter()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        try:
            run = dag.test(logical_date=logical_date, run_after=run_after, run_conf=dict(conf))
            _record_actual_start(run)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    return str(getattr(run, "state", "unknown")), time.perf_counter() - started


def _record_actual_start(run: DagRun) -> None:
    """dag.test() stamps a run as started at its logical date (a past session shows a duration of a year in the UI);
    the run started when its first task did."""
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        first = session.query(TaskInstance.start_date).filter(
            TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id,
            TaskInstance.start_date.isnot(None)).order_by(TaskInstance.start_date).first()
        if first is not None:
            session.query(DagRun).filter(DagRun.id == run.id).update({DagRun.start_date: first[0]})


def run_dag_locally(dag_id: str, day: dt.date, conf: dict[str, Any] | None = None) -> tuple[str, float, str]:
    """`market-mlops run`: one run of a suite DAG on the embedded stack, dated `day` (00:00 UTC): the session of
    that day for the session DAGs, the interval ending that day for the monthly and weekly ones. Returns the run's
    state, seconds and the log file (or, when it failed, the last error in it)."""
    env = configure_environment()
    ensure_airflow_db()
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=env["AIRFLOW__CORE__DAGS_FOLDER"])
    if dag_id not in bag.dags:
        raise ValueError(f"unknown DAG {dag_id!r}: the suite's DAGs are {sorted(bag.dags)}")
    log_path = os.path.join(env["MLOPS_HOME"], "runs.log")
    offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    moment = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    state, seconds = run_dag_in_process(bag.dags[dag_id], moment, conf or {}, log_path)
    with open(log_path, "rb") as fh:
        fh.seek(offset)
        reasons = [line.strip() for line in fh.read().decode(errors="replace").splitlines()
                   if "Exception: " in line or "Error: " in line]
    return state, seconds, reasons[-1] if reasons and state != "success" else log_path
