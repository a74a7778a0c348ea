"""MLflow tracking server unreachable during a retrain: a clean failure; the retry registers exactly one version
and moves the champion alias once."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from market_mlops.data.dataset import merge_bars
from market_mlops.data.synthetic import GeneratorSpec, generate_bars

pytestmark = [pytest.mark.integration, pytest.mark.training]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(home: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
         "--artifacts-destination", str(home / "artifacts"), "--serve-artifacts", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return proc
        except OSError:
            time.sleep(1)
    proc.kill()
    raise TimeoutError("mlflow server did not start")


def test_outage_then_retry_registers_once(mlops_home, monkeypatch):
    from market_mlops.registry import aliases, store
    from market_mlops.tasks.retrain import retrain_model

    port = _free_port()
    for key, value in {"RF_ESTIMATORS": 40, "BOOST_ROUNDS": 60, "FOLDS": 3, "HISTORY_YEARS": 5, "MIN_TRAIN_ROWS": 200,
                       "BOOTSTRAP_SAMPLES": 100}.items():
        monkeypatch.setenv(f"MLOPS__TRAINING__{key}", str(value))
    monkeypatch.setenv("MLOPS__UNIVERSE__SYMBOLS", "SPY,AAA")
    monkeypatch.setenv("MLOPS__STORAGE__MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    root = mlops_home / "ds"
    merge_bars(root, generate_bars(GeneratorSpec(seed=4, signal_strength=0.3), ["SPY", "AAA"], "d1",
                                   dt.date(2019, 1, 2), dt.date(2025, 9, 30)))
    data = {"md5": "test.dir", "path": str(root), "gx_result_id": "gx", "interval_end": "2025-10-01T00:00:00+00:00"}

    with pytest.raises(Exception) as err:  # nothing listens on the port: the task fails cleanly
        retrain_model("AAA", "d1", data, force_promotion=True)
    assert "127.0.0.1" in str(err.value) or "Connection" in type(err.value).__name__ + str(err.value)

    server = _start_server(mlops_home / "mlflow-server", port)
    try:
        first = retrain_model("AAA", "d1", data, force_promotion=True)  # the retry
        again = retrain_model("AAA", "d1", data, force_promotion=True)  # and a second retry
        c = store.client()
        assert first["version"] == str(again["version"]) == "1"
        assert len(c.search_model_versions("name = 'AAA-d1-direction'")) == 1
        moves = aliases.alias_history("AAA-d1-direction")
        assert [(m["from"], m["to"]) for m in moves] == [(None, "1")]  # the champion alias moved once
    finally:
        server.terminate()
        server.wait(timeout=30)
