from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag


def run_dag(dag, logical_date, conf=None) -> str:
    run = dag.test(logical_date=logical_date, run_conf=dict(conf or {}))
    return str(run.state)
