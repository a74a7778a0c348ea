from __future__ import annotations

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
