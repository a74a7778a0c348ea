"""A registry that cannot be reached fails the task (Airflow retries it); only "does not exist" means "no champion".

Before, the champion listing of `drift_check` and `weekly_weight_refresh` caught every error, so an MLflow outage
turned into "no champions" and both DAGs succeeded doing nothing."""

from __future__ import annotations

import socket

import pytest
from mlflow.exceptions import MlflowException

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket closes


def test_an_unreachable_registry_fails_the_lookups(mlops_home, monkeypatch):
    from market_mlops.registry.aliases import alias_version
    from market_mlops.tasks.universe import champions

    monkeypatch.setenv("MLOPS__STORAGE__MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with pytest.raises(MlflowException, match="127.0.0.1"):
        champions()
    with pytest.raises(MlflowException, match="127.0.0.1"):
        alias_version("SPY-d1-direction", "champion")


def test_a_reachable_registry_without_models_answers_none(mlops_home):
    from market_mlops.registry.aliases import alias_version
    from market_mlops.registry.store import client
    from market_mlops.tasks.universe import champions

    assert champions() == []
    assert alias_version("SPY-d1-direction", "champion") is None
    client().create_registered_model("SPY-d1-direction")  # a model without the alias
    assert alias_version("SPY-d1-direction", "champion") is None and champions() == []
