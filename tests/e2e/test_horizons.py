"""Several horizons per timeframe on the defaults (d1 at 5, 1 and 20 sessions), end to end with dag.test().

Each horizon is its own registered model with its own labels, gate, forecasts and drift check; the consensus of a
symbol takes a vote from each; a retrain or a rollback can be narrowed to one horizon and leaves the others alone.
One symbol (AAPL, benchmark SPY ingested and not modelled) and small models: this test is about which models, not
their skill.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from market_mlops.data.calendar import session

from .conftest import run_dag

pytestmark = [pytest.mark.e2e, pytest.mark.training]
SMALL = {"MLOPS__TRAINING__RF_ESTIMATORS": "40", "MLOPS__TRAINING__BOOST_ROUNDS": "60", "MLOPS__TRAINING__FOLDS": "3",
         "MLOPS__TRAINING__HISTORY_YEARS": "5", "MLOPS__TRAINING__MIN_TRAIN_ROWS": "200",
         "MLOPS__TRAINING__BOOTSTRAP_SAMPLES": "100", "MLOPS__UNIVERSE__SYMBOLS": "AAPL",
         "MLOPS__UNIVERSE__TIMEFRAMES": "d1"}
NAMES = {5: "AAPL-d1-direction", 1: "AAPL-d1-h1-direction", 20: "AAPL-d1-h20-direction"}


def _after_close(day: dt.date) -> dt.datetime:
    return session("XNYS", day).close.to_pydatetime() + dt.timedelta(minutes=45)


def test_each_horizon_is_a_model_with_its_forecasts_its_vote_and_its_own_rollback(dagbag, mlops_home, monkeypatch):
    from market_mlops.config import get_config
    from market_mlops.monitoring.consensus import latest_consensus
    from market_mlops.monitoring.forecasts import load_forecasts
    from market_mlops.monitoring.history import drift_history
    from market_mlops.registry import store

    monkeypatch.delenv("MLOPS__TIMEFRAMES__D1__HORIZONS")  # the configured horizons, not the session's pin
    for key, value in SMALL.items():
        monkeypatch.setenv(key, value)
    assert get_config().spec("d1").horizons == [5, 1, 20]
    ingest = dagbag.dags["market_data_ingestion"]
    assert run_dag(ingest, _after_close(dt.date(2025, 9, 30)), {"history_start": "2019-01-02"}) == "success"
    assert run_dag(ingest, _after_close(dt.date(2025, 11, 14)), {"history_start": "2025-10-01"}) == "success"
    retrain = dagbag.dags["model_retrain"]
    assert run_dag(retrain, dt.datetime(2025, 10, 1, tzinfo=dt.UTC),
                   {"force_promotion": True, "until": None, "reason": "test", "search_trials": 0}) == "success"

    # One registered model per horizon, each trained on its own label (the run records the horizon) and gated.
    c = store.client()
    for horizon, name in NAMES.items():
        champion = c.get_model_version_by_alias(name, "champion")
        run = c.get_run(champion.run_id)
        assert run.data.params["horizon"] == str(horizon) and run.data.tags["horizon"] == str(horizon)
        assert run.data.tags["mlops.run_key"].startswith(
            f"retrain-AAPL-d1{'' if horizon == 5 else f'-h{horizon}'}-20251001")
    shares = {h: c.get_run(c.get_model_version_by_alias(n, "champion").run_id).data.params for h, n in NAMES.items()}
    assert shares[1]["class_share.neutral"] != shares[20]["class_share.neutral"]  # different labels, not one copied

    # Drift checks forecast with every champion at its horizon; the consensus has a vote from each.
    drift = dagbag.dags["drift_check"]
    assert run_dag(drift, _after_close(dt.date(2025, 11, 6)), {}) == "success"
    assert run_dag(drift, _after_close(dt.date(2025, 11, 14)), {}) == "success"
    cfg = get_config()
    forecasts = load_forecasts("AAPL", "d1", cfg)
    assert {(n, int(h)) for n, h in zip(forecasts["model_name"], forecasts["horizon"], strict=True)} == \
        {(n, h) for h, n in NAMES.items()}
    assert {r["model"] for r in drift_history(cfg)} == set(NAMES.values())
    [consensus] = latest_consensus(cfg)
    assert consensus["symbol"] == "AAPL" and consensus["interval_end"].startswith("2025-11-14")
    assert sorted(m["horizon"] for m in consensus["members"]) == [1, 5, 20]
    voters = [m for m in consensus["members"] if m["weight"] > 0]  # model champions with skill: baselines abstain
    assert all(m["serving"] == "model" and m["skill"] > 0 for m in voters)
    furthest = max(voters or consensus["members"], key=lambda m: m["horizon"])  # the voter looking furthest ahead
    assert consensus["anchor"] == furthest["model"] and consensus["horizon"] == furthest["horizon"]
    assert (consensus["direction"] == "NONE") == (not voters) and (1 / 3 <= consensus["agreement"] <= 1 or not voters)

    # A retrain narrowed to one horizon (what an emergency on that model asks for) trains that model only. On a DAG
    # object of its own: dag.test() runs tasks in this process, and a run's conf left in the shared DAG's params
    # would narrow the later tests' retrains too (a scheduler's worker parses the DAG for every task).
    from airflow.dag_processing.dagbag import DagBag

    narrowed = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags")).dags["model_retrain"]
    versions_before = {n: len(c.search_model_versions(f"name = '{n}'")) for n in NAMES.values()}
    assert run_dag(narrowed, dt.datetime(2025, 11, 1, tzinfo=dt.UTC),
                   {"force_promotion": True, "until": None, "reason": "test", "search_trials": 0,
                    "horizons": [20]}) == "success"
    after = {n: len(c.search_model_versions(f"name = '{n}'")) for n in NAMES.values()}
    assert after[NAMES[20]] > versions_before[NAMES[20]]
    assert {n: after[n] for n in (NAMES[1], NAMES[5])} == {n: versions_before[n] for n in (NAMES[1], NAMES[5])}

    # Rollback names the horizon; the other horizons' champions do not move; an unknown horizon is one line.
    champions = {n: str(c.get_model_version_by_alias(n, "champion").version) for n in NAMES.values()}
    cli = str(Path(sys.executable).parent / "market-mlops")
    out = subprocess.run([cli, "rollback", "--symbol", "AAPL", "--timeframe", "d1", "--horizon", "20",
                          "--to-version", "1", "--force", "--reason", "horizon test"],  # v1 may never have served
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert str(c.get_model_version_by_alias(NAMES[20], "champion").version) == "1"
    assert {n: str(c.get_model_version_by_alias(n, "champion").version) for n in (NAMES[1], NAMES[5])} == \
        {n: champions[n] for n in (NAMES[1], NAMES[5])}
    out = subprocess.run([cli, "rollback", "--symbol", "AAPL", "--timeframe", "d1", "--horizon", "7"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "unknown horizon(s) [7]" in out.stderr and out.stderr.strip().count("\n") == 0, \
        out.stderr

    # Reordered horizons would hand the plain name to another horizon: the retrain refuses, naming the fix.
    from market_mlops.tasks.retrain import resolve_data_version, retrain_model

    monkeypatch.setenv("MLOPS__TIMEFRAMES__D1__HORIZONS", "20,5,1")
    data = resolve_data_version(dt.datetime(2025, 10, 1, tzinfo=dt.UTC))
    with pytest.raises(ValueError, match=r"trained AAPL-d1-direction 5 bars ahead, the config now says 20.*put it first"):
        retrain_model("AAPL", "d1", data, horizon=20)
