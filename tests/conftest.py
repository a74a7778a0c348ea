"""Every test session runs on its own embedded stack in a temporary MLOPS_HOME (never the demo's .state)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_HOME = Path(tempfile.mkdtemp(prefix="mlops-test-"))

# Must happen before anything imports Airflow.
sys.path.insert(0, str(REPO / "include"))
from market_mlops.dev.local_stack import configure_environment  # noqa: E402

configure_environment(_HOME, override=True)
for key in [k for k in os.environ if k.startswith("MLOPS__") or k.startswith("AIRFLOW_CONN_")]:
    del os.environ[key]
from tests.horizons import ONE_HORIZON  # noqa: E402

os.environ.update(ONE_HORIZON)  # each test trains the main horizon of a timeframe (see tests/horizons.py)


@pytest.fixture(scope="session")
def stack_home() -> Path:
    return _HOME


@pytest.fixture(scope="session")
def airflow_db(stack_home: Path) -> Path:
    """A migrated Airflow metadata DB (SQLite) with the suite's pools."""
    from market_mlops.dev.local_stack import ensure_airflow_db

    ensure_airflow_db()
    return stack_home / "airflow" / "airflow.db"


# A new home's stores as its first command leaves them: the Airflow metadata DB migrated (with the suite's pools)
# and the MLflow store created, both empty. Copied into each test's home, they spare every test that runs
# `market-mlops` in a new home the 5-8 s of those two migrations; the migrations themselves run here (through
# `ensure_airflow_db` and `store.client`, the path of a user's first command), in the demo and in the browser tier.
_NEW_HOME_STORES = ("airflow/airflow.db", "mlflow/mlflow.db")


@pytest.fixture(scope="session")
def new_home_stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import subprocess

    template = tmp_path_factory.mktemp("new-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")} | {"MLOPS_HOME": str(template)}
    subprocess.run([sys.executable, "-c", "from market_mlops.dev.local_stack import configure_environment, "
                    "ensure_airflow_db; configure_environment(); ensure_airflow_db(); "
                    "from market_mlops.registry import store; store.client().search_experiments()"],
                   env=env, check=True, capture_output=True, timeout=300)
    assert all((template / name).exists() for name in _NEW_HOME_STORES)
    return template


@pytest.fixture
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_home_stores: Path) -> Path:
    """A fresh MLOPS_HOME for one test (data root, DVC remote, MLflow store, outbox under it), its stores empty."""
    import shutil

    for name in _NEW_HOME_STORES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(new_home_stores / name, tmp_path / name)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 HTTP endpoint on 127.0.0.1 (moto's server); yields (endpoint_url, server)."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}", server
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint):
    import uuid

    import boto3

    endpoint, _server = s3_endpoint
    name = f"mlops-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
    return endpoint, name
