"""DAG integrity, parametrized over every file in dags/: imports, parse cost, arguments, schedules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_"))
HEAVY = ["pandas", "numpy", "sklearn", "xgboost", "lightgbm", "mlflow", "great_expectations", "dvc", "scipy", "boto3"]

PARSE_PROBE = r"""
import importlib.util, json, sys, time
from airflow.sdk import BaseHook, Variable
calls = []
def _forbidden(kind):
    def fail(*a, **k):
        calls.append(kind)
        raise RuntimeError(f"{kind} lookup at parse time")
    return fail
BaseHook.get_connection = classmethod(_forbidden("connection"))
Variable.get = staticmethod(_forbidden("variable"))
path = sys.argv[1]
before = set(sys.modules)
t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
seconds = time.perf_counter() - t0
heavy = sorted({m.split(".")[0] for m in set(sys.modules) - before} & set(sys.argv[2].split(",")))
print(json.dumps({"heavy": heavy, "lookups": calls, "seconds": seconds}))
"""


def _probe(dag_file: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO / "include")])}
    out = subprocess.run([sys.executable, "-c", PARSE_PROBE, str(dag_file), ",".join(HEAVY)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_there_are_dags():
    assert DAG_FILES, "dags/ holds no DAG file"


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_parse_imports_no_heavy_module_and_looks_nothing_up(dag_file):
    result = _probe(dag_file)
    assert result["heavy"] == [], f"{dag_file.name} imports {result['heavy']} at parse time"
    assert result["lookups"] == [], f"{dag_file.name} looks up {result['lookups']} at parse time"


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_arguments(dagbag, dag_file):
    dag = dagbag.dags.get(dag_file.stem)
    assert dag is not None, f"file name must equal dag_id: no DAG {dag_file.stem!r}"
    assert dag.tags, "tags are required"
    assert dag.doc_md and "When it fails" in dag.doc_md, "doc_md must hold the operator runbook"
    assert dag.max_active_runs is not None and dag.catchup is False
    assert dag.start_date is not None
    for task in dag.tasks:
        assert task.owner and task.owner != "airflow", f"{task.task_id}: set an owner"
        assert task.retries >= 1, f"{task.task_id}: retries must be >= 1"
        # A return annotation Airflow resolves as a dict turns on multiple_outputs: every key becomes its own XCom.
        assert not getattr(task, "multiple_outputs", False), f"{task.task_id}: multiple_outputs (a `-> dict` return?)"
        callbacks = task.on_failure_callback if isinstance(task.on_failure_callback, list) else [task.on_failure_callback]
        assert any(callbacks), f"{task.task_id}: needs a failure callback"


@pytest.mark.parametrize("dag_id", ["model_retrain", "weekly_weight_refresh", "drift_check"])
def test_the_horizons_field_is_a_pick_list_of_the_configured_horizons_that_takes_text_or_numbers(dagbag, dag_id):
    """Airflow's form shows an array param with `examples` as a pick list (without, a raw JSON editor) and sends the
    picks as text; a conf (the CLI, an emergency retrain) sends numbers: both validate, both are horizons."""
    from market_mlops.orchestration import configured_horizons, horizon_list

    param = dagbag.dags[dag_id].params.get_param("horizons")
    horizons = configured_horizons()
    assert param.schema["examples"] == horizons and horizons, horizons
    for picked in ([str(h) for h in horizons], horizons, []):
        param.resolve(picked)
        assert horizon_list(picked) == (horizons if picked else None)
    with pytest.raises(Exception, match="does not match|is not valid"):
        param.resolve(["five"])
