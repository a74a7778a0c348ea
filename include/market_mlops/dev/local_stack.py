"""The embedded stack: Airflow on SQLite, MLflow on SQLite, DVC with a local remote, all under MLOPS_HOME.

`configure_environment` must run before Airflow is imported. It only fills variables the user has not set, so
the same code runs against Postgres, an MLflow server or MinIO when the environment says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from market_mlops.config import REPO_ROOT


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
