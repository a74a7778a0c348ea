"""docker-compose.yaml wiring, checked by reading it (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"]
ONE_SHOT = {"airflow-init", "minio-init", "mlflow-init"}
SECRET_KEY = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY|_KEY_ID|CONN_)", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return env if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def test_every_required_service_exists(compose):
    required = {"postgres", "redis", "minio", "minio-init", "mlflow", "mlflow-init", "airflow-init", *AIRFLOW_SERVICES}
    assert required <= set(compose["services"])


def test_long_running_services_are_health_checked(compose):
    for name, service in compose["services"].items():
        if name not in ONE_SHOT:
            assert "healthcheck" in service and service["healthcheck"]["test"], f"{name} has no health check"


def test_airflow_services_wait_for_what_they_need(compose):
    for name in AIRFLOW_SERVICES:
        deps = compose["services"][name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"
        assert deps["mlflow"]["condition"] == "service_healthy"
        assert deps["minio-init"]["condition"] == "service_completed_successfully"
        assert deps["airflow-init"]["condition"] == "service_completed_successfully"
        assert deps["mlflow-init"]["condition"] == "service_completed_successfully"  # its account exists
    assert compose["services"]["mlflow-init"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert compose["services"]["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert compose["services"]["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"


def test_executor_broker_and_result_backend_agree(compose):
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        env = _env(compose["services"][name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379")
        assert "@postgres:5432/airflow" in env["AIRFLOW__CELERY__RESULT_BACKEND"]
        assert "@postgres:5432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "${AIRFLOW_JWT_SECRET:?set in .env}"


def test_one_tracking_uri_and_one_s3_endpoint_everywhere(compose):
    mlflow = compose["services"]["mlflow"]
    port = re.search(r"--port (\d+)", mlflow["command"]).group(1)
    tracking, endpoints = set(), set()
    for service in compose["services"].values():
        env = _env(service)
        if "MLOPS__STORAGE__MLFLOW_TRACKING_URI" in env:
            tracking.add(env["MLOPS__STORAGE__MLFLOW_TRACKING_URI"])
        for key in ("MLOPS__STORAGE__S3_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
            if key in env:
                endpoints.add(env[key])
    assert tracking == {f"http://mlflow:{port}"}
    assert endpoints == {"http://minio:9000"}
    assert "--serve-artifacts" in mlflow["command"] and "postgres:5432/mlflow" in _env(mlflow)["MLFLOW_BACKEND_STORE_URI"]
    assert "CREATE DATABASE mlflow" in (REPO / "docker" / "postgres-init.sql").read_text()


def test_images_are_pinned(compose):
    for name, service in compose["services"].items():
        image = service.get("image", "")
        assert image, f"{name} has no image"
        assert ":" in image and not image.endswith(":latest"), f"{name} image {image!r} is not pinned"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim", dockerfile, re.M)
    assert "requirements.lock" in dockerfile


def test_no_literal_secret_and_every_credential_comes_from_env(compose):
    text = (REPO / "docker-compose.yaml").read_text()
    for name, service in compose["services"].items():
        for key, value in _env(service).items():
            if SECRET_KEY.search(key) and not key.endswith("_FILE"):  # a path to a secret is not one
                assert str(value).startswith("${"), f"{name}.{key} holds a literal value"
            if "://" in str(value) and "@" in str(value):
                assert "${POSTGRES_PASSWORD" in str(value), f"{name}.{key} embeds a literal credential"
    referenced = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))  # $${X} is the container's own variable
    example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert referenced <= set(example), f"missing from .env.example: {referenced - set(example)}"
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def test_pools_and_dags_wiring(compose):
    init = compose["services"]["airflow-init"]["command"]
    assert "airflow db migrate" in init and "market-mlops pools" in init  # the pools defined in orchestration.POOLS
    worker = compose["services"]["airflow-worker"]
    assert "celery worker" in worker["command"] and "deploy" not in worker  # scale with --scale, not a fixed count


def test_celery_workers_import_the_task_libraries_before_they_fork(compose):
    """Every Airflow service names the suite's Celery config; it is Airflow's own plus a hook that imports what the
    tasks need (each name must resolve: a typo would only log a warning and cost every task its import again)."""
    import importlib
    import importlib.util

    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    from market_mlops.celery_worker import TASK_LIBRARIES

    module, _, name = _env(compose["x-airflow-common"])["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"].rpartition(".")
    assert getattr(importlib.import_module(module), name) == DEFAULT_CELERY_CONFIG
    assert [n for n in TASK_LIBRARIES if importlib.util.find_spec(n) is None] == []
    # And the MLflow client's plugin registries, which it builds on a process's first request otherwise (a later
    # MLflow that moved them makes this fail here, not only cost every task its first round trip again).
    import mlflow.tracking._model_registry.utils as registry_utils

    from market_mlops.celery_worker import preload_task_libraries

    assert set(preload_task_libraries()) == {"imports", "mlflow_package_map", "mlflow_registries"}
    assert registry_utils._model_registry_store_registry is not None


@pytest.mark.integration
def test_the_mlflow_service_answers_its_host_names_and_only_its_accounts_write(compose, tmp_path):
    """The compose `mlflow` command, run natively (SQLite and a folder standing in for Postgres and MinIO):
    - the Airflow services call it as mlflow:5000, which MLflow 3 refuses (403 "Invalid Host header") without
      --allowed-hosts; /health is exempt, so the healthcheck asks a real API with that Host header (and the admin);
    - MLflow's basic-auth app: without credentials nothing is read or written (401); the pipeline's account that
      `mlflow-init` creates registers a model and moves an alias; a person's account is read-only (403)."""
    import base64
    import json
    import os
    import shlex
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    service = compose["services"]["mlflow"]
    steps = [s.strip() for s in shlex.split(service["command"])[-1].split("&&")][1:]  # after the secrets check
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    admin_password = "an-admin-password-of-the-test"
    values = {"MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "MLOPS_MLFLOW_UI_HOST": "mlflow.example.org",
              "MLFLOW_AUTH_CONFIG_PATH": str(tmp_path / "mlflow-auth.ini")}
    env = {**os.environ, "MLFLOW_S3_ENDPOINT_URL": "", "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-flask-secret-key-of-the-test-0123456789",
           "MLFLOW_AUTH_DATABASE_URI": f"sqlite:///{tmp_path / 'auth.db'}", **values}
    venv = Path(sys.executable).parent
    config = shlex.split(re.sub(r"\$\$\{(\w+)\}", lambda m: values[m.group(1)], steps[0]))
    assert config[:3] == ["market-mlops", "mlflow-auth", "config"]
    subprocess.run([str(venv / "market-mlops"), *config[1:]], env=env, check=True, capture_output=True, timeout=120)
    args = shlex.split(re.sub(r"\$\$\{(\w+)\}", lambda m: values[m.group(1)], steps[-1]))
    assert args[:4] == ["mlflow", "server", "--app-name", "basic-auth"] and "--allowed-hosts" in args
    swap = {"--artifacts-destination": (tmp_path / "artifacts").as_uri(), "--host": "127.0.0.1", "--port": str(port)}
    args = [swap.get(args[i - 1], a) if i else a for i, a in enumerate(args)]
    args = [a.replace("localhost:5000", f"localhost:{port}") for a in args]  # the service's port, moved here
    log = (tmp_path / "mlflow.log").open("wb")
    proc = subprocess.Popen([str(venv / "mlflow"), *args[1:], "--workers", "1"], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)
    base = f"http://127.0.0.1:{port}"

    def call(path: str, host: str = "localhost", user: tuple[str, str] | None = ("admin", admin_password),
             body: dict | None = None, method: str = "GET") -> int:
        headers = {"Host": host, "Content-Type": "application/json"}
        if user:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        req = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
        try:
            return urllib.request.urlopen(req, timeout=10).status
        except urllib.error.HTTPError as exc:
            return exc.code

    def fetch(path: str, user: tuple[str, str], body: dict) -> dict:
        headers = {"Content-Type": "application/json",
                   "Authorization": "Basic " + base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()}
        req = urllib.request.Request(f"http://localhost:{port}/api/2.0/mlflow/{path}", method="POST", headers=headers,
                                     data=json.dumps(body).encode())
        return json.loads(urllib.request.urlopen(req, timeout=10).read())

    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=5)
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "mlflow.log").read_text()[-2000:]
                time.sleep(1)
        search = "experiments/search?max_results=1"
        assert call(search, "mlflow:5000") == 200 and call(search, "mlflow.example.org") == 200
        assert call(search, "evil.example.com") == 403  # the flag is what lets the service names through
        check = service["healthcheck"]["test"]
        assert check[0] == "CMD" and "Host" in check[-1] and "/health" not in check[-1] and check[1:3] == ["python", "-c"]
        probe = subprocess.run([sys.executable, "-c", check[-1].replace("localhost:5000", f"localhost:{port}")],
                               env=env, capture_output=True, text=True, timeout=30)
        assert probe.returncode == 0, probe.stderr

        # mlflow-init's command makes the pipeline's account; people get accounts that can only read.
        init = compose["services"]["mlflow-init"]
        assert shlex.split(init["command"])[-1].split("&&")[-1].split() == ["market-mlops", "mlflow-auth", "pipeline-user"]
        pipeline = ("mlops-pipeline", "a-pipeline-password-of-the-test")
        account = {**env, "MLOPS__STORAGE__MLFLOW_TRACKING_URI": f"http://localhost:{port}",  # a host it allows
                   "MLFLOW_TRACKING_USERNAME": pipeline[0], "MLFLOW_TRACKING_PASSWORD": pipeline[1]}
        for _ in range(2):  # a rerun of mlflow-init is safe
            done = subprocess.run([str(venv / "market-mlops"), "mlflow-auth", "pipeline-user"], env=account,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr[-1500:]
        assert call("users/create", body={"username": "analyst", "password": "an-analyst-password"}, method="POST") == 200
        analyst = ("analyst", "an-analyst-password")
        model = {"name": "SPY-d1-direction"}
        assert call("registered-models/create", user=None, body=model, method="POST") == 401
        assert call(search, user=None) == 401
        assert call("registered-models/create", user=pipeline, body=model, method="POST") == 200
        experiment = fetch("experiments/create", pipeline, {"name": "market-direction"})["experiment_id"]
        run_id = fetch("runs/create", pipeline, {"experiment_id": experiment})["run"]["info"]["run_id"]
        version = {"name": "SPY-d1-direction", "source": f"runs:/{run_id}/model", "run_id": run_id}
        alias = {"name": "SPY-d1-direction", "alias": "champion", "version": "1"}
        assert call("model-versions/create", user=pipeline, body=version, method="POST") == 200
        assert call("registered-models/alias", user=pipeline, body=alias, method="POST") == 200
        assert call("registered-models/get?name=SPY-d1-direction", user=analyst) == 200  # people read
        assert call("model-versions/create", user=analyst, body=version, method="POST") == 403
        assert call("registered-models/alias", user=analyst, body={**alias, "version": "2"}, method="POST") == 403
        assert call("registered-models/alias", user=None, body=alias, method="POST") == 401

        # The suite's experiments keep their files where the server sends them (--artifacts-destination: MinIO in
        # compose), never on the disk of the worker that logged them; a folder goes up side by side (the suite's
        # artifact repository), in MLflow's layout.
        import mlflow
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        from market_mlops.config import load_config
        from market_mlops.registry import store
        from market_mlops.registry.artifact_upload import ParallelUploadRepository

        os.environ.update({"MLFLOW_TRACKING_USERNAME": pipeline[0], "MLFLOW_TRACKING_PASSWORD": pipeline[1]})
        cfg = load_config(environ={"MLOPS_HOME": str(tmp_path / "worker"),
                                   "MLOPS__STORAGE__MLFLOW_TRACKING_URI": f"http://localhost:{port}"})
        drift = store.client(cfg).get_experiment(store.experiment_id(cfg, store.DRIFT_EXPERIMENT))
        assert drift.artifact_location.startswith("mlflow-artifacts:/"), drift.artifact_location
        folder = tmp_path / "files"
        for rel in ("a.json", "plots/b.svg", "plots/deep/c.csv", "model/artifacts/rf.skops"):
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(rel)
        with mlflow.start_run(experiment_id=drift.experiment_id) as run:
            assert isinstance(get_artifact_repository(run.info.artifact_uri), ParallelUploadRepository)  # registered by the package's entry point
            mlflow.log_artifacts(str(folder), "report")
        landed = sorted(str(f.relative_to(tmp_path / "artifacts")).split("/artifacts/report/", 1)[-1]
                        for f in (tmp_path / "artifacts").rglob("*") if f.is_file())
        assert landed == ["a.json", "model/artifacts/rf.skops", "plots/b.svg", "plots/deep/c.csv"]
        assert not (tmp_path / "worker" / "mlflow").exists()
    finally:
        os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
        os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def test_connections_are_encrypted_with_one_fernet_key(compose):
    env = _env(compose["x-airflow-common"])
    assert env["AIRFLOW__CORE__FERNET_KEY"] == "${AIRFLOW_FERNET_KEY:?set in .env}"
    assert "AIRFLOW_FERNET_KEY=" in (REPO / ".env.example").read_text()


@pytest.mark.parametrize(("service", "required"), [
    ("airflow-init", {"AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                      "AWS_SECRET_ACCESS_KEY", "AIRFLOW_ADMIN_PASSWORD", "MLOPS_SIGNING_KEYS"}),
    ("mlflow", {"MLFLOW_BACKEND_STORE_URI", "AWS_SECRET_ACCESS_KEY", "MLFLOW_AUTH_ADMIN_PASSWORD",
                "MLFLOW_FLASK_SERVER_SECRET_KEY"}),
    ("mlflow-init", {"MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_TRACKING_PASSWORD"}),
    ("airflow-apiserver", {"AIRFLOW_ADMIN_PASSWORD"}),
])
def test_services_holding_secrets_check_them_before_anything_else(compose, service, required):
    import shlex

    script = shlex.split(compose["services"][service]["command"])[-1]
    first = shlex.split(script.split("&&")[0])
    assert first[:3] == ["market-mlops", "secrets", "check"] and set(first[4:]) == required


def _airflow_db_url(password: str) -> str:
    return "postgresql+psycopg2://mlops:" + password + "@postgres:5432/airflow"


def test_the_env_example_placeholders_are_refused_and_generated_values_pass():
    """The refusal itself: every value `.env.example` ships is refused with a line naming the variable and how to
    make a good one; values made the way those lines say pass."""
    import secrets

    from cryptography.fernet import Fernet

    from market_mlops.secrets_check import check

    example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#") and "=" in line)
    shipped = {
        "AIRFLOW__CORE__FERNET_KEY": example["AIRFLOW_FERNET_KEY"],
        "AIRFLOW__API_AUTH__JWT_SECRET": example["AIRFLOW_JWT_SECRET"],
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _airflow_db_url(example["POSTGRES_PASSWORD"]),
        "AWS_SECRET_ACCESS_KEY": example["MINIO_PIPELINE_PASSWORD"],
        "AIRFLOW_ADMIN_PASSWORD": example["AIRFLOW_ADMIN_PASSWORD"],
        "MLOPS_SIGNING_KEYS": example["MLOPS_SIGNING_KEYS"],
    }
    lines = check(shipped)
    assert len(lines) == len(shipped)
    assert all("placeholder" in line and "in .env" in line for line in lines), lines
    assert any("Fernet.generate_key()" in line for line in lines)
    good = {
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _airflow_db_url(secrets.token_urlsafe(18)),
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(18),
        "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(12),
        "MLOPS_SIGNING_KEYS": f"{secrets.token_hex(32)},{secrets.token_hex(32)}",  # rotating: new key first
    }
    assert check(good) == []
    assert "fewer than 32" in check({**good, "MLOPS_SIGNING_KEYS": f"{secrets.token_hex(32)},short"})[0]
    assert check({}, ("AIRFLOW__CORE__FERNET_KEY",)) == [check({"AIRFLOW__CORE__FERNET_KEY": ""})[0]]  # missing = empty
    assert "not a Fernet key" in check({**good, "AIRFLOW__CORE__FERNET_KEY": secrets.token_hex(22)})[0]
    assert "fewer than 16" in check({**good, "AWS_SECRET_ACCESS_KEY": "k7Qz9Lm2"})[0]


def test_the_command_stops_the_service_in_one_line_per_secret(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "MLFLOW"))}
    env["AWS_SECRET_ACCESS_KEY"] = "change-me-too"
    cli = Path(sys.executable).parent / "market-mlops"
    out = subprocess.run([str(cli), "secrets", "check", "--require", "AIRFLOW__CORE__FERNET_KEY"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "error: AIRFLOW__CORE__FERNET_KEY is empty: set AIRFLOW_FERNET_KEY: python -c \"from cryptography.fernet import "
        "Fernet; print(Fernet.generate_key().decode())\" in .env",
        "error: AWS_SECRET_ACCESS_KEY is a placeholder ('change-me-to'...): set MINIO_PIPELINE_PASSWORD: openssl rand "
        "-base64 24 | tr -d '/+=' in .env"]


def test_only_minio_init_holds_the_storage_root_credentials(compose):
    """Least privilege: the Airflow services and MLflow get the pipeline user; the root user creates the buckets,
    the users and their policies, and nothing else sees it."""
    text = yaml.safe_dump(compose)
    for name, service in compose["services"].items():
        holds_root = "MINIO_ROOT" in yaml.safe_dump(service)
        assert holds_root is (name in {"minio", "minio-init"}), f"{name} references the MinIO root credentials"
    assert "MINIO_ROOT" not in yaml.safe_dump(compose["x-airflow-common"])
    assert _env(compose["x-airflow-common"])["AWS_ACCESS_KEY_ID"] == "${MINIO_PIPELINE_USER:?set in .env}"
    assert _env(compose["services"]["mlflow"])["AWS_ACCESS_KEY_ID"] == "${MINIO_PIPELINE_USER:?set in .env}"
    init = compose["services"]["minio-init"]["entrypoint"]
    assert "policy attach local pipeline --user" in init and "policy attach local uploader --user" in init
    assert "./docker/minio:/policies:ro" in compose["services"]["minio-init"]["volumes"]
    assert text  # the whole file parsed


def _grants(policy: dict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        for resource in statement["Resource"]:
            out.setdefault(resource.removeprefix("arn:aws:s3:::"), set()).update(statement["Action"])
    return out


def test_each_role_can_do_what_it_needs_and_no_more():
    import json

    pipeline = _grants(json.loads((REPO / "docker" / "minio" / "pipeline-policy.json").read_text()))
    uploader = _grants(json.loads((REPO / "docker" / "minio" / "uploader-policy.json").read_text()))
    for bucket in ("mlops-data", "mlflow"):
        assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"} <= pipeline[f"{bucket}/*"]
    assert pipeline["mlops-landing/*"] == {"s3:GetObject"}  # drops are read, never changed or deleted
    assert not any("*" in action for actions in pipeline.values() for action in actions)
    assert uploader == {"mlops-landing/drops/*": {"s3:PutObject"}}


def test_workers_share_no_state_volume_and_state_lives_in_servers(compose):
    """A worker on another host needs the image, the environment and the network, no volume: MLOPS_HOME is a cache
    in each container; what the suite remembers is in PostgreSQL (a database postgres-init creates), batches on
    their way to the dataset and the DVC remote on S3."""
    home = _env(compose["services"]["airflow-worker"])["MLOPS_HOME"]
    for name in AIRFLOW_SERVICES:
        mounts = [str(v).split(":")[1] for v in compose["services"][name].get("volumes", [])]
        assert not any(m.startswith(home) for m in mounts), (name, mounts)
    env = _env(compose["services"]["airflow-worker"])
    database = env["MLOPS__STORAGE__STATE_URL"].rsplit("/", 1)[1]
    assert env["MLOPS__STORAGE__STATE_URL"].startswith("postgresql+psycopg2://") and "@postgres:5432/" in env["MLOPS__STORAGE__STATE_URL"]
    assert f"CREATE DATABASE {database};" in (REPO / "docker" / "postgres-init.sql").read_text()
    assert env["MLOPS__STORAGE__BATCHES_URL"].startswith("s3://") and env["MLOPS__STORAGE__DVC_REMOTE_URL"].startswith("s3://")
    assert "market-mlops state upgrade" in compose["services"]["airflow-init"]["command"]


def test_the_compose_executor_and_its_worker_load(compose):
    """The lock must hold a Celery the provider works with (celery 5.7 dropped an import the provider needs, and
    every worker and the scheduler died at start); the cluster tier runs them, this says it in a second."""
    import importlib

    assert _env(compose["x-airflow-common"])["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    module = importlib.import_module("airflow.providers.celery.executors.celery_executor")
    assert module.CeleryExecutor.__name__ == "CeleryExecutor"
