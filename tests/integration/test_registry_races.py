"""Mapped retrain tasks start together on a fresh MLflow backend store (PostgreSQL, as in production) and race to
create the experiment and a registered model: every process must succeed and see the same objects.

(This race failed a scheduler-tier run: the loser of `create_experiment` failed its task, which then waited out
a five-minute retry delay.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from tests.postgres import PG, psql

pytestmark = pytest.mark.integration
RACERS = 6

RACER = """
import json, sys, time
from market_mlops.registry import store, versions
start, run_id = float(sys.argv[1]), sys.argv[2]
time.sleep(max(0.0, start - time.time()))
exp = store.experiment_id()
version = versions.register_version("RACE-d1-direction", run_id, {"racer": run_id})
print(json.dumps({"experiment": exp, "version": version.version}))
"""


@pytest.fixture
def postgres_tracking_uri():
    db = f"race_mlflow_{uuid.uuid4().hex[:8]}"
    psql(f"CREATE DATABASE {db}")
    yield f"postgresql+psycopg2://{PG}/{db}"
    psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def test_racing_tasks_share_one_experiment_and_registered_model(postgres_tracking_uri, mlops_home):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=postgres_tracking_uri)
    scratch = client.create_experiment("scratch")  # also creates the tables once, as airflow-init does
    run_ids = [client.create_run(scratch).info.run_id for _ in range(RACERS)]
    env = {**os.environ, "MLOPS_HOME": str(mlops_home), "MLOPS__STORAGE__MLFLOW_TRACKING_URI": postgres_tracking_uri}

    start = time.time() + 6  # every racer has imported MLflow by then
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(start), run_id], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for run_id in run_ids]
    outcomes = [proc.communicate(timeout=180) for proc in procs]
    for proc, (_, err) in zip(procs, outcomes, strict=True):
        assert proc.returncode == 0, err[-1500:]

    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outcomes]
    assert len({r["experiment"] for r in results}) == 1
    assert sorted(int(r["version"]) for r in results) == list(range(1, RACERS + 1))
    from market_mlops.registry.store import EXPERIMENT

    assert sorted(e.name for e in client.search_experiments()) == sorted(["Default", "scratch", EXPERIMENT])
    assert [m.name for m in client.search_registered_models()] == ["RACE-d1-direction"]
