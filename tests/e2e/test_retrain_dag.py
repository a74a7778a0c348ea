"""The retrain DAG end to end with dag.test(), and the same retrain through `dvc repro` outside Airflow."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from market_mlops.config import get_config
from market_mlops.data.calendar import session

from .conftest import run_dag

pytestmark = [pytest.mark.e2e, pytest.mark.training]
REPO = Path(__file__).resolve().parents[2]
FAST = {"RF_ESTIMATORS": 60, "BOOST_ROUNDS": 80, "FOLDS": 3, "HISTORY_YEARS": 5, "MIN_TRAIN_ROWS": 200,
        "BOOTSTRAP_SAMPLES": 200}


@pytest.fixture
def retrain_env(mlops_home, monkeypatch):
    for key, value in FAST.items():
        monkeypatch.setenv(f"MLOPS__TRAINING__{key}", str(value))
    monkeypatch.setenv("MLOPS__UNIVERSE__SYMBOLS", "SPY,AAPL")
    monkeypatch.setenv("MLOPS__UNIVERSE__TIMEFRAMES", "d1")
    return mlops_home


def _load_history(dagbag, until: dt.date) -> None:
    run_after = session("XNYS", until).close.to_pydatetime() + dt.timedelta(minutes=30)
    assert run_dag(dagbag.dags["market_data_ingestion"], run_after, {"history_start": "2019-01-02"}) == "success"


def test_monthly_retrain_registers_one_version_per_model_and_reruns_idempotently(dagbag, retrain_env):
    from market_mlops.registry import store

    _load_history(dagbag, dt.date(2025, 9, 30))
    dag = dagbag.dags["model_retrain"]
    october_first = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    assert run_dag(dag, october_first, {"search_trials": 0, "force_promotion": False}) == "success"
    c = store.client()
    names = sorted(m.name for m in c.search_registered_models())
    assert names == ["AAPL-d1-direction", "SPY-d1-direction"]
    counts = {}
    for name in names:
        versions = sorted(c.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
        # The trained version; and, when it did not pass the gate, the better baseline as champion (a second one).
        champion = c.get_registered_model(name).aliases["champion"]
        assert [v.tags["kind"] for v in versions] == (["model"] if str(champion) == "1" else ["model", "baseline"])
        counts[name] = len(versions)
        run = c.get_run(versions[0].run_id)
        tags = run.data.tags
        assert tags["data.version"].endswith(".dir") and tags["data.gx_result_id"].startswith("gx-")
        assert tags["airflow.dag_id"] == "model_retrain" and tags["airflow.task_id"] == "retrain_model"
        assert run.data.params["train_end"] < "2025-10-01"  # point in time
        assert {f"holdout.{b}_{m}" for b in ("climatology", "persistence") for m in ("accuracy", "log_loss", "brier")} \
            <= set(run.data.metrics)
        assert {a.path for a in c.list_artifacts(run.info.run_id, "evaluation")} >= {
            "evaluation/reliability.csv", "evaluation/calibration.json", "evaluation/stress.json"}
        # What the version leans on (mean |contribution| per feature over its holdout) and its book resampled.
        import mlflow

        leaning = json.loads(Path(mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="explain/mean_abs_contributions.json")).read_text())
        assert leaning["rows"] > 100 and len(leaning["mean_abs"]) >= 10
        assert min(leaning["mean_abs"].values()) >= 0 < max(leaning["mean_abs"].values())
        stress = json.loads(Path(mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="evaluation/stress.json")).read_text())
        assert stress["bootstrap"]["paths"] == 1000 and stress["stress"] == []  # a 2025 holdout: no named window
        assert str(versions[0].version) in {str(v) for v in c.get_registered_model(name).aliases.values()}
        assert versions[0].tags["fit.end"] > run.data.params["train_end"]  # the served version was refit

    # The task's "MLflow run" / "MLflow model" buttons, resolved the way the api-server resolves extra links.
    from airflow.models import DagRun
    from airflow.models.taskinstancekey import TaskInstanceKey
    from mlflow_links import MLflowModelLink, MLflowRunLink

    # This test's run (dag.test replaces an earlier run of the same date): other tests of the session's Airflow DB
    # made model_retrain runs of later months too.
    [run_id] = [r.run_id for r in DagRun.find(dag_id="model_retrain") if r.logical_date == october_first]
    key = TaskInstanceKey("model_retrain", "retrain_model", run_id, try_number=1, map_index=0)
    run_url, model_url = MLflowRunLink().get_link(None, ti_key=key), MLflowModelLink().get_link(None, ti_key=key)
    spy = c.get_model_version("SPY-d1-direction", "1")  # map index 0: the universe's first pair, its trained version
    assert run_url.endswith(f"/#/runs/{spy.run_id}"), run_url
    assert model_url.endswith("/#/models/SPY-d1-direction/versions/1"), model_url

    assert run_dag(dag, october_first, {"search_trials": 0, "force_promotion": False}) == "success"  # a rerun
    assert {n: len(c.search_model_versions(f"name = '{n}'")) for n in names} == counts

    # A rollback that cannot succeed (the form's defaults: this champion replaced no earlier version) fails at once,
    # without a retry, and the last line of its log names the real fix, not an outage.
    from .conftest import market_mlops

    name = "SPY-d1-direction"
    champion = str(c.get_registered_model(name).aliases["champion"])
    out = market_mlops("run", "model_rollback", "--date", "2025-10-02",
                       "--conf", json.dumps({"symbol": "SPY", "timeframe": "d1"}))
    assert out.returncode == 1, out.stdout[-1500:] + out.stderr[-1500:]
    home = Path(os.environ["MLOPS_HOME"])
    logs = list((home / "airflow" / "logs" / "dag_id=model_rollback").glob("*/task_id=rollback_champion/*"))
    assert [log.name for log in logs] == ["attempt=1.log"], logs  # no second try
    lines = [json.loads(line) for line in logs[0].read_text().splitlines()]
    fix = ("what to do: name the version to move to: --to-version N (model_rollback's to_version field); "
           "market-mlops models lists each model's versions")
    events = [line["event"] for line in lines]
    while events[-1] == "::endgroup::":  # Airflow closes its groups after the callbacks: markers, no lines
        events = events[:-1]
    assert events[-3:] == [  # the log view's last lines, outside "Post Execute"
        "::endgroup::", f"rollback_champion failed: RegistryRefusal: {name}: champion v{champion} replaced no earlier "
        "version", fix], events[-3:]
    full = [line for line in lines if " | what to do: " in line["event"]][-1]
    assert full["event"].startswith(f"rollback_champion failed (try 1 of 2): RegistryRefusal: {name}: champion "
                                    f"v{champion} replaced no earlier version"), full
    assert full["event"].endswith("| " + fix), full


def test_dvc_repro_rebuilds_the_model_outside_airflow(dagbag, retrain_env, tmp_path):
    from market_mlops.model.ensemble_model import sha256_file

    _load_history(dagbag, dt.date(2025, 9, 30))
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "config", project / "config")
    shutil.copytree(REPO / "include", project / "include", ignore=shutil.ignore_patterns("__pycache__"))
    params = (project / "params.yaml").read_text().replace("symbol: AAPL", "symbol: SPY")
    (project / "params.yaml").write_text(params)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MLOPS_CONFIG": str(project / "config" / "pipeline.yaml")}
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=project, check=True, env=env)
    shutil.copy(REPO / ".dvcignore", project / ".dvcignore")
    first = subprocess.run([*dvc, "repro"], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    metrics = json.loads((project / "build" / "metrics.json").read_text())
    assert 0 < metrics["model_accuracy"] < 1 and "persistence_accuracy" in metrics
    assert metrics["model_log_loss"] <= metrics["climatology_log_loss"] + 0.05  # calibrated: never far off
    assert json.loads((project / "build" / "features.json").read_text())["data_version"].endswith(".dir")
    model_bytes = {str(p): sha256_file(p) for p in (project / "build" / "model").rglob("*") if p.is_file()}
    assert (project / "build" / "model" / "evaluated" / "rf.txt").exists()  # what `evaluate` scores: not the refit

    again = subprocess.run([*dvc, "repro"], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "didn't change" in again.stdout  # nothing to redo
    subprocess.run([*dvc, "repro", "--force"], cwd=project, env=env, check=True, capture_output=True, timeout=600)
    assert {str(p): sha256_file(p) for p in (project / "build" / "model").rglob("*")
            if p.is_file()} == model_bytes  # reproducible
    assert get_config().data_root.exists()
