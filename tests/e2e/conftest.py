from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    """The DAGs as parsed for the stock universes these tests narrow the config to: the session timetables follow
    the NYSE (the default universe's FX pair would move every close to 17:00 New York)."""
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS__UNIVERSE__SYMBOLS", "SPY,AAPL")
        bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag


def run_dag(dag, logical_date, conf=None) -> str:
    run = dag.test(logical_date=logical_date, run_conf=dict(conf or {}))
    return str(run.state)


def market_mlops(*args: str) -> subprocess.CompletedProcess:
    """The command as a user runs it (its own process, the environment of the test)."""
    # Without the Airflow settings an in-process test left in os.environ: each home gets its own Airflow DB (a shared
    # one held another home's Asset events, whose data version this home cannot materialize).
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    return subprocess.run([str(Path(sys.executable).parent / "market-mlops"), *args], capture_output=True, text=True,
                          env=env, timeout=600)
