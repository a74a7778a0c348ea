"""Weekly weight refresh and weekday drift check end to end with dag.test() on generated data with a shift."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from market_mlops.config import get_config
from market_mlops.data.calendar import session

from .conftest import run_dag

pytestmark = [pytest.mark.e2e, pytest.mark.training]
FAST = {"MLOPS__TRAINING__RF_ESTIMATORS": "60", "MLOPS__TRAINING__BOOST_ROUNDS": "80", "MLOPS__TRAINING__FOLDS": "3",
        "MLOPS__TRAINING__HISTORY_YEARS": "5", "MLOPS__TRAINING__MIN_TRAIN_ROWS": "200",
        "MLOPS__TRAINING__BOOTSTRAP_SAMPLES": "200", "MLOPS__UNIVERSE__SYMBOLS": "SPY,AAPL",
        "MLOPS__UNIVERSE__TIMEFRAMES": "d1", "MLOPS__SOURCE__SYNTHETIC__SHIFT_AFTER": "2025-10-03",
        # A weekly refresh fits weights on rows the base models never learned: a champion refit on every row (the
        # default) has none for months on daily bars, so this test serves the evaluated fit to exercise the refresh's
        # registration; the default's skip is asserted at the end.
        "MLOPS__TRAINING__REFIT": "none"}


def _after_close(day: dt.date) -> dt.datetime:
    return session("XNYS", day).close.to_pydatetime() + dt.timedelta(minutes=45)


def test_refresh_and_drift_dags(dagbag, mlops_home, monkeypatch):
    from market_mlops.monitoring.bands import BANDS
    from market_mlops.monitoring.forecasts import load_forecasts
    from market_mlops.monitoring.history import drift_history
    from market_mlops.registry import store

    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    ingest = dagbag.dags["market_data_ingestion"]
    assert run_dag(ingest, _after_close(dt.date(2025, 9, 30)), {"history_start": "2019-01-02"}) == "success"
    assert run_dag(ingest, _after_close(dt.date(2025, 11, 14)), {"history_start": "2025-10-01"}) == "success"
    assert run_dag(dagbag.dags["model_retrain"], dt.datetime(2025, 10, 1, tzinfo=dt.UTC),
                   {"force_promotion": True, "until": None, "reason": "test", "search_trials": 0}) == "success"
    c = store.client()
    parents = {n: str(c.get_model_version_by_alias(n, "champion").version) for n in ("SPY-d1-direction", "AAPL-d1-direction")}

    # Weekly refresh: a new version per champion, same base-model bytes, parent recorded, gate decided.
    assert run_dag(dagbag.dags["weekly_weight_refresh"], dt.datetime(2025, 10, 13, 6, tzinfo=dt.UTC), {}) == "success"
    for name, parent in parents.items():
        versions = sorted(c.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
        assert len(versions) == 2
        child = versions[-1]
        parent_tags = c.get_run(versions[0].run_id).data.tags
        child_tags = c.get_run(child.run_id).data.tags
        for key in ("sha256.rf", "sha256.xgb", "sha256.lgbm"):
            assert child_tags[key] == parent_tags[key]
        assert child_tags["sha256.meta"] != parent_tags["sha256.meta"]  # new weights
        assert child_tags["refresh.parent_version"] == parent
        assert c.get_model_version(name, child.version).tags["gate.decision"] in {"promoted", "kept as challenger",
                                                                                  "too few outcomes"}

    # Weekday drift check: forecasts stored, bands measured, report and history written; a rerun changes nothing.
    drift = dagbag.dags["drift_check"]
    assert run_dag(drift, _after_close(dt.date(2025, 11, 6)), {}) == "success"  # a consensus call 11-14 resolves
    assert run_dag(drift, _after_close(dt.date(2025, 11, 14)), {}) == "success"
    cfg = get_config()
    history = drift_history(cfg)
    assert {r["model"] for r in history} == set(parents)
    assert all(r["band"] in BANDS and r["features_checked"] > 50 for r in history), [
        (r["model"], r["version"], r["band"], r["features_checked"], r.get("live_action")) for r in history]
    assert all(r["resolved"] >= 10 for r in history)
    assert all({"ic", "rank_ic", "long_short_sharpe", "turnover"} <= set(r["finance"]) for r in history)
    assert all(r["finance"]["ic"] is None or -1 <= r["finance"]["ic"] <= 1 for r in history)
    forecasts = load_forecasts("SPY", "d1", cfg)
    assert len(forecasts) > 20 and set(forecasts.columns) >= {"ts", "horizon", "model_version", "p_bullish", "predicted"}
    # Why each forecast was made: every forecast of a model champion has its drivers (its called class, five signed
    # features), a baseline's none (it follows its class mix); the report names the newest's and what moved.
    from market_mlops.monitoring.drivers import load_drivers

    for last in {r["model"]: r for r in history}.values():
        symbol = last["symbol"]
        served = load_forecasts(symbol, "d1", cfg, model_version=last["version"], model_name=last["model"])
        drivers = load_drivers(symbol, "d1", last["model"], cfg, model_version=last["version"])
        if last["serving"] == "baseline":
            assert drivers.empty and last["latest_drivers"] is None, last["model"]
            continue
        assert len(served) > 0 and list(drivers["ts"]) == list(served["ts"]), (last["model"], len(drivers), len(served))
        assert list(drivers["called"]) == list(served["predicted"])
        assert all(len(top) == 5 and all(isinstance(v, float) for _, v in top) for top in drivers["top"])
        assert last["latest_drivers"] == drivers["top"].iloc[-1] and len(last["attribution_shift"]) == 3, last
    # The consensus per symbol: with one champion each, a model with skill over its baselines makes the call alone,
    # and its realized accuracy (the call of 11-06 resolved five sessions later) equals the champion's on the same
    # calls: no edge over its anchor, so it is not shown as a call of its own; a baseline champion does not vote.
    from market_mlops.monitoring.consensus import NO_CALL, describe_edge, has_edge, latest_consensus

    consensus = {r["symbol"]: r for r in latest_consensus(cfg)}
    assert set(consensus) == {"SPY", "AAPL"}
    for r in consensus.values():
        [member] = r["members"]
        assert r["interval_end"].startswith("2025-11-14") and not has_edge(r)
        if member["weight"] > 0:
            assert member["serving"] == "model" and member["skill"] > 0 and r["agreement"] == 1.0
            assert r["direction"] == member["predicted"] == r["anchor_predicted"]
            assert r["resolved"] >= 1 and r["realized_accuracy"] == r["anchor_accuracy"]
            assert describe_edge(r).startswith("no consensus edge: +0.0000 nats"), describe_edge(r)
        else:
            assert r["direction"] == NO_CALL and r["agreement"] == 0 and r["resolved"] == 0, r
    assert run_dag(drift, _after_close(dt.date(2025, 11, 14)), {}) == "success"
    assert load_forecasts("SPY", "d1", cfg).equals(forecasts)
    assert {r["symbol"]: r for r in latest_consensus(cfg)} == consensus  # a rerun replaces the session's row
    run = c.get_run(history[-1]["mlflow_run_id"])
    assert run.data.tags["band"] == history[-1]["band"]
    artifacts = {a.path for a in c.list_artifacts(run.info.run_id, "drift")}
    assert artifacts == {"drift/drift_report.json", "drift/drift_report.html"}

    # A drift shard's retry checks only what failed: the first try checks SPY and fails naming the champion it could
    # not load; the retry (same Airflow run) keeps SPY's stored result (no second check, MLflow run or alert) and
    # fails on that model only.
    from market_mlops.tasks.drift_check import check_shard
    from market_mlops.tasks.shards import ShardFailed
    from market_mlops.tasks.universe import champion_shards

    end = _after_close(dt.date(2025, 11, 13))  # a session no check above has covered

    def checks_at_end() -> list[dict]:
        return [r for r in drift_history(cfg) if r["interval_end"] == end.isoformat()]

    [shard] = champion_shards(symbols=["SPY"], timeframes=["d1"], cooldown_until=end)
    shard["champions"].append({"symbol": "NOPE", "timeframe": "d1", "version": "1"})
    ctx = {"dag_id": "drift_check", "run_id": "manual__retry-test", "task_id": "check_model_drift"}
    assert checks_at_end() == []
    with pytest.raises(ShardFailed, match=r"1 of 2 models failed: NOPE d1") as first:
        check_shard(shard, end - dt.timedelta(days=1), end, ctx)
    [checked] = checks_at_end()
    assert checked["model"] == "SPY-d1-direction"
    # The retry cannot check SPY (its champion alias is gone meanwhile): it must not try to.
    champion = c.get_model_version_by_alias("SPY-d1-direction", "champion").version
    c.delete_registered_model_alias("SPY-d1-direction", "champion")
    with pytest.raises(ShardFailed, match=r"1 of 2 models failed: NOPE d1") as retry:
        check_shard(shard, end - dt.timedelta(days=1), end, ctx)
    assert checks_at_end() == [checked]
    assert [f.model for f in first.value.failures] == [f.model for f in retry.value.failures] == ["NOPE d1"]
    c.set_registered_model_alias("SPY-d1-direction", "champion", champion)
    # Another run (a new trigger, not a retry) checks it again.
    with pytest.raises(ShardFailed, match=r"1 of 2 models failed: NOPE d1"):
        check_shard(shard, end - dt.timedelta(days=1), end, ctx | {"run_id": "manual__another-run"})
    [again] = checks_at_end()
    assert (checked["airflow_run_id"], again["airflow_run_id"]) == ("manual__retry-test", "manual__another-run")
    # It logs into the report run of the first check of this interval (its record names it): no second run; one
    # deleted in MLflow since gets a new run instead of failing the check.
    assert again["mlflow_run_id"] == checked["mlflow_run_id"]
    assert set(again["seconds"]) == {"prefetch", "load", "window", "score", "explain", "live", "measure", "report"}
    c.delete_run(again["mlflow_run_id"])
    with pytest.raises(ShardFailed, match=r"1 of 2 models failed: NOPE d1"):
        check_shard(shard, end - dt.timedelta(days=1), end, ctx | {"run_id": "manual__third-run"})
    [third] = checks_at_end()
    assert third["mlflow_run_id"] != again["mlflow_run_id"]
    assert c.get_run(third["mlflow_run_id"]).data.tags["mlops.run_key"] == f"drift-SPY-d1-direction-{end.isoformat()[:16]}"
    # A try that logged its report but failed before recording its check: the next finds the run by its name.
    from market_mlops.state import store as state
    from market_mlops.state import tables

    with state.engine(cfg).begin() as connection:
        connection.execute(tables.drift_checks.delete().where(tables.drift_checks.c.interval_end == end.isoformat()))
    with pytest.raises(ShardFailed, match=r"1 of 2 models failed: NOPE d1"):
        check_shard(shard, end - dt.timedelta(days=1), end, ctx | {"run_id": "manual__fourth-run"})
    [fourth] = checks_at_end()
    assert fourth["mlflow_run_id"] == third["mlflow_run_id"]
    reports = c.search_runs([c.get_experiment_by_name("market-drift").experiment_id],
                            filter_string=f"attributes.run_name LIKE '%-{end.isoformat()[:16]}'")
    assert [(r.data.tags["model"], r.info.status) for r in reports] == [("SPY-d1-direction", "FINISHED")]  # no NOPE run
    # A version that lost the champion alias since its listing (a task cleared after a promotion) is not checked.
    c.delete_registered_model_alias("SPY-d1-direction", "champion")
    with pytest.raises(ShardFailed, match=r"1 of 1 models failed: NOPE d1"):
        check_shard(shard, end - dt.timedelta(days=1), end, ctx | {"run_id": "manual__fifth-run"})
    assert checks_at_end() == [fourth]
    c.set_registered_model_alias("SPY-d1-direction", "champion", champion)

    # A check for a session the data does not reach is refused with a critical alert, and no band is written.
    from market_mlops.monitoring.alerts import Outbox
    from market_mlops.tasks.drift_check import StaleData, require_fresh_data

    checks_before = len(drift_history(cfg))
    with pytest.raises(StaleData, match=r"stale data: the newest data version ends 2025-11-14.*up to 2025-12-15"):
        require_fresh_data(_after_close(dt.date(2025, 12, 15)))
    require_fresh_data(_after_close(dt.date(2025, 11, 14)))  # the data's own session: fresh
    assert any(r["alert"]["title"] == "Stale data: drift check refused" and r["alert"]["severity"] == "critical"
               for r in Outbox(cfg).latest().values())
    assert len(drift_history(cfg)) == checks_before

    # The default: a champion refit up to its cutoff has learned every row a refresh a week later could use.
    from market_mlops.tasks.refresh import refresh_weights
    from market_mlops.tasks.retrain import resolve_data_version, retrain_model

    monkeypatch.setenv("MLOPS__TRAINING__REFIT", "full")
    cutoff = dt.datetime(2025, 11, 3, tzinfo=dt.UTC)
    refit = retrain_model("SPY", "d1", resolve_data_version(cutoff), force_promotion=True)
    assert refit["decision"] == "promoted" and refit["fit_end"] >= "2025-10-2"
    skipped = refresh_weights("SPY", "d1", dt.datetime(2025, 11, 10, 6, tzinfo=dt.UTC))
    assert skipped["version"] == refit["version"], skipped
    why = re.fullmatch(r"(\d+) resolved bars the base models never learned: \d+ to fit on and \d+ to evaluate, need 100 "
                       r"and 20; (\d+) more bars?, about (\d+) more weeks? of this champion \(a monthly retrain that "
                       r"promotes starts the count again\)", skipped["skipped"])
    # d1 at horizon 5 needs 175 unseen bars: a week after a full refit about 34 weeks are missing
    assert why and int(why[1]) + int(why[2]) == 175 and int(why[3]) >= 30, skipped["skipped"]

    # The new champion's first check forecasts bars an earlier version forecast too: its page still reads them all.
    from market_mlops.tasks.drift_check import check_model_drift
    from market_mlops.ui import fleet
    from market_mlops.ui.app import model_detail

    end = _after_close(dt.date(2025, 11, 14))
    check_model_drift("SPY", "d1", end - dt.timedelta(days=1), end)
    both = load_forecasts("SPY", "d1", cfg)
    assert both.duplicated("ts").any() and both["model_version"].nunique() >= 2
    versions = fleet.registry_versions(cfg, "SPY-d1-direction")
    checks = drift_history(cfg, "SPY-d1-direction")
    detail = model_detail(fleet.model_rows([], versions, checks)[0], versions, checks, cfg)
    assert detail.notes == [] and detail.forecasts
    assert all("correct" in f for f in detail.forecasts if f["ts"] < both["ts"].max() - dt.timedelta(days=10))


def test_a_run_made_without_a_logical_date_gets_the_interval_its_timetable_gives(dagbag, mlops_home):
    """Airflow 3's REST API and `airflow dags trigger` make runs without a logical date (no data interval): the drift
    check takes the session its timetable gives a manual run now, and refuses it as stale here (no data), in one try,
    instead of failing on a missing interval."""
    from market_mlops.monitoring.alerts import Outbox

    run = dagbag.dags["drift_check"].test(logical_date=None)
    assert run.logical_date is None and str(run.state) == "failed"
    titles = [r["alert"]["title"] for r in Outbox(get_config()).records()]
    assert "Stale data: drift check refused" in titles, titles
