"""docker-compose.yaml wiring, checked by reading it (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"]
ONE_SHOT = {"airflow-init", "minio-init"}
SECRET_KEY = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY|_KEY_ID|CONN_)", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return env if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def test_every_required_service_exists(compose):
    required = {"postgres", "redis", "minio", "minio-init", "mlflow", "airflow-init", *AIRFLOW_SERVICES}
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
