"""The suite's SQL store on the machine's PostgreSQL (as in production) and on SQLite: migrations to head, idempotent
upserts from several processes, and an unreachable server that fails loudly instead of reading as "no history"."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import uuid

import pytest

from market_mlops.config import load_config
from tests.postgres import PG, psql

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def state_cfg(request, tmp_path):
    if request.param == "sqlite":
        yield load_config(environ={"MLOPS_HOME": str(tmp_path)})
        return
    name = f"mlops_state_{uuid.uuid4().hex[:8]}"
    psql(f"CREATE DATABASE {name}")
    try:
        yield load_config(environ={"MLOPS_HOME": str(tmp_path),
                                   "MLOPS__STORAGE__STATE_URL": f"postgresql+psycopg2://{PG}/{name}"})
    finally:
        from market_mlops.state import store

        store._engine(f"postgresql+psycopg2://{PG}/{name}").dispose()
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _log_sessions(url_and_home: tuple[str | None, str], first: int) -> None:
    """One worker process logging versions and drift checks (its own engine, as on another host)."""
    from market_mlops.data.versioning import log_version
    from market_mlops.monitoring.history import record_drift_check

    url, home = url_and_home
    environ = {"MLOPS_HOME": home, **({"MLOPS__STORAGE__STATE_URL": url} if url else {})}
    cfg = load_config(environ=environ)
    for day in range(first, first + 10):
        end = dt.datetime(2025, 10, day, 21, tzinfo=dt.UTC).isoformat()
        log_version({"md5": f"v{day}.dir", "interval_start": end, "interval_end": end, "run_id": f"run-{day}",
                     "rows_added": {"SPY": day}}, cfg)
        record_drift_check({"model": "SPY-d1-direction", "version": "3", "interval_end": end, "band": "normal",
                            "emergency_retrain_triggered": day == first}, cfg)


def test_two_processes_log_and_every_row_is_there_once(state_cfg):
    from market_mlops.data.versioning import version_history
    from market_mlops.monitoring.history import drift_history, emergency_triggers

    target = (state_cfg.storage.state_url, str(state_cfg.home))
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_log_sessions, args=(target, first)) for first in (1, 11)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    _log_sessions(target, 1)  # a retried worker: the same rows again, not new ones

    history = version_history(state_cfg)
    assert sorted(r["md5"] for r in history) == sorted(f"v{d}.dir" for d in range(1, 21))
    assert all(r["logged_at"] for r in history)
    checks = drift_history(state_cfg, "SPY-d1-direction")
    assert len(checks) == 20 and [c["interval_end"] for c in checks] == sorted(c["interval_end"] for c in checks)
    assert [t.day for t in emergency_triggers("SPY-d1-direction", state_cfg)] == [1, 11]  # the cooldown sees both hosts


def test_an_unreachable_store_fails_instead_of_reading_as_no_history(tmp_path):
    from market_mlops.data.versioning import version_history
    from market_mlops.state.store import StateStoreError

    cfg = load_config(environ={"MLOPS_HOME": str(tmp_path),
                               "MLOPS__STORAGE__STATE_URL": "postgresql+psycopg2://mlops:secret@127.0.0.1:9/mlops_state"})
    with pytest.raises(StateStoreError, match=r"unreachable") as err:
        version_history(cfg)
    assert "secret" not in str(err.value)  # the one line names the server, never the password


def test_a_check_with_nothing_resolved_is_stored_on_every_database(state_cfg):
    """A drift check before any forecast resolved has NaN accuracies: PostgreSQL refuses JSON's NaN token (SQLite
    takes it), so the record is stored with nulls on both, and reads back the same on both."""
    from market_mlops.monitoring.history import drift_history, record_drift_check

    record_drift_check({"model": "QQQ-d1-direction", "version": "1", "interval_end": "2025-07-07T20:00:00+00:00",
                        "band": "normal", "emergency_retrain_triggered": False, "realized_accuracy": float("nan"),
                        "delta_points": float("nan"), "features": [{"name": "rsi_14", "psi": float("inf")}]}, state_cfg)
    stored = drift_history(state_cfg)[-1]
    assert stored["realized_accuracy"] is None and stored["delta_points"] is None
    assert stored["features"] == [{"name": "rsi_14", "psi": None}] and stored["band"] == "normal"


def test_threads_asking_for_a_fresh_store_at_once_migrate_it_once(tmp_path):
    """The api-server answers two requests at once after a start: both threads need the store (alembic's migration
    context is process-global; two upgrades at once failed with KeyError: 'config')."""
    from concurrent.futures import ThreadPoolExecutor

    from market_mlops.state import store, tables

    cfg = load_config(environ={"MLOPS_HOME": str(tmp_path)})
    with ThreadPoolExecutor(8) as pool:
        engines = list(pool.map(lambda _: store.engine(cfg), range(8)))
    assert len({id(e) for e in engines}) == 1
    assert store.rows(tables.data_versions, cfg) == []
