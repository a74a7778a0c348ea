"""The ingestion DAG end to end with dag.test(): sessions, rerun, out-of-order backfill, a rejected batch."""

from __future__ import annotations

import datetime as dt

import pytest

from market_mlops.config import get_config
from market_mlops.data.calendar import session
from market_mlops.data.versioning import read_version, version_history
from tests.files import parquet_digests

from .conftest import market_mlops, run_dag

pytestmark = pytest.mark.e2e
SESSIONS = [dt.date(2024, 11, 25), dt.date(2024, 11, 26), dt.date(2024, 11, 27), dt.date(2024, 11, 29)]


def _after_close(day: dt.date) -> dt.datetime:
    return session("XNYS", day).close.to_pydatetime() + dt.timedelta(minutes=30)


@pytest.fixture
def universe(monkeypatch):
    monkeypatch.setenv("MLOPS__UNIVERSE__SYMBOLS", "SPY,AAPL")
    monkeypatch.setenv("MLOPS__UNIVERSE__TIMEFRAMES", "d1,h1")


def _ingest(dag, days):
    for day in days:
        assert run_dag(dag, _after_close(day), {"history_start": None}) == "success"


def test_sessions_rerun_and_out_of_order_backfill(dagbag, universe, tmp_path, monkeypatch):
    dag = dagbag.dags["market_data_ingestion"]

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "in_order"))
    _ingest(dag, SESSIONS)
    cfg = get_config()
    in_order = read_version(cfg.data_root)
    in_order_bytes = parquet_digests(cfg.data_root / "dataset")
    log = version_history()
    assert [r["sessions"] for r in log] == [[d.isoformat()] for d in SESSIONS]
    assert log[0]["rows_added"] == {"AAPL": 8, "SPY": 8}  # 1 daily + 7 hourly bars each
    assert log[-1]["rows_added"] == {"AAPL": 5, "SPY": 5}  # early close on 29 Nov: 1 daily + 4 hourly
    assert all(r["gx_result_id"].startswith("gx-") for r in log)

    # Rerunning a session changes nothing: the same bytes, no version logged, the head where it was.
    _ingest(dag, [SESSIONS[1]])
    assert read_version(cfg.data_root) == in_order
    assert version_history() == log

    # The same sessions in another order give the same bytes and the same data version.
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "shuffled"))
    _ingest(dag, [SESSIONS[2], SESSIONS[0], SESSIONS[3], SESSIONS[1]])
    cfg = get_config()
    assert parquet_digests(cfg.data_root / "dataset") == in_order_bytes
    assert read_version(cfg.data_root).md5 == in_order.md5
    assert _staleness_alerts() == []  # an out-of-order backfill is not stale data


def _staleness_alerts() -> list[str]:
    from market_mlops.monitoring.alerts import Outbox

    return [" | ".join([r["text"], *r["alert"]["lines"]]) for r in Outbox().records()
            if r["alert"]["kind"] == "staleness"]


def test_a_run_after_missed_sessions_raises_a_critical_staleness_alert_and_ingests_its_own(dagbag, universe,
                                                                                         mlops_home):
    """Runs were missed (a paused DAG: catchup is off, so nothing ingests them): the next run alerts, naming the
    newest data and the sessions to backfill, and still ingests its own session."""
    dag = dagbag.dags["market_data_ingestion"]
    _ingest(dag, [SESSIONS[0]])
    assert _staleness_alerts() == []
    _ingest(dag, [dt.date(2024, 12, 3)])
    [alert] = _staleness_alerts()
    assert alert.startswith("[CRITICAL] Stale data: ingestion missed sessions"), alert
    assert "stale data: the newest data version ends 2024-11-25 21:00 UTC, 4 session(s) before this run's" in alert
    assert "backfill market_data_ingestion over 2024-11-26 .. 2024-12-02" in alert, alert
    assert version_history()[-1]["sessions"] == ["2024-12-03"]




def test_bad_batch_fails_the_run_and_publishes_nothing(dagbag, universe, tmp_path, monkeypatch):
    dag = dagbag.dags["market_data_ingestion"]
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MLOPS__SOURCE__KIND", "landing")
    _ingest_day = SESSIONS[0]
    folder = get_config().path("landing") / _ingest_day.isoformat()
    folder.mkdir(parents=True)
    (folder / "SPY_d1.csv").write_text("ts,open,high,low,close,volume\n2024-11-25T14:30:00Z,10,9,11,10,100\n")
    state = run_dag(dag, _after_close(_ingest_day), {"history_start": None})
    cfg = get_config()
    assert state == "failed"
    assert read_version(cfg.data_root) is None and version_history() == []
    assert list((cfg.data_root / "quarantine").glob("*/*/report.json"))


def test_a_failed_task_log_ends_with_its_reason_and_what_to_do(universe, mlops_home, monkeypatch):
    """`market-mlops run` on a bad landing file: the command's one error line and the last line of the gate task's
    log (the file the grid view shows: what the task logged, not what the in-process API server did) both name the task, the file, the broken check and what to do; the task
    failed at once (bad data does not get better on retry)."""
    import json

    monkeypatch.setenv("MLOPS__SOURCE__KIND", "landing")
    folder = mlops_home / "landing" / SESSIONS[0].isoformat()
    folder.mkdir(parents=True)
    (folder / "SPY_d1.csv").write_text("ts,open,high,low,close,volume\n2024-11-25T14:30:00Z,10,9,11,10,100\n")
    out = market_mlops("run", "market_data_ingestion", "--date", SESSIONS[0].isoformat(),
                       "--conf", '{"history_start": null}')
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    error = out.stderr.strip().splitlines()[-1]
    assert " failed in " in error and ": validate_bars failed (try 1 of 3): BatchRejected: " in error, error

    logs = list((mlops_home / "airflow" / "logs" / "dag_id=market_data_ingestion").glob("*/task_id=validate_bars/*"))
    assert [p.name for p in logs] == ["attempt=1.log"], logs
    lines = [json.loads(line) for line in logs[0].read_text().splitlines()]
    full = [line for line in lines if " | what to do: " in line["event"]][-1]  # what `market-mlops run` reads
    assert full["level"] == "error", full
    assert full["event"].startswith("validate_bars failed (try 1 of 3): BatchRejected: validation failed for 1 of 1 "
                                    "file(s): 2024-11-25/SPY_d1.csv: high_ge_open"), full
    fix = ("what to do: read the quarantine report named above, fix or replace those files in the landing folder (or "
           "re-run with accept_gaps / allow_restatement if the data is right), then trigger market_data_ingestion again")
    assert full["event"].endswith("| " + fix), full
    # What Airflow's log view shows last, outside its collapsed "Post Execute" group: why, in short, and the fix.
    events = [line["event"] for line in lines]
    while events[-1] == "::endgroup::":  # Airflow closes its groups after the callbacks: markers, no lines
        events = events[:-1]
    closing = events[-3:]
    assert closing[0] == "::endgroup::" and closing[2] == fix, closing
    assert closing[1].startswith("validate_bars failed: BatchRejected: validation failed for 1 of 1 file(s): "
                                 "2024-11-25/SPY_d1.csv: high_ge_open") and len(closing[1]) <= 460, closing
    assert read_version(get_config().data_root) is None


def test_a_session_years_before_the_old_start_date_runs_its_tasks(dagbag, universe, mlops_home):
    """Before, every DAG started on 2024-01-01: a run of a 2019 session had no task instance and still read as a
    success, so history before 2024 could not be loaded without editing the DAG files."""
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session

    dag = dagbag.dags["market_data_ingestion"]
    assert run_dag(dag, _after_close(dt.date(2019, 3, 5)), {"history_start": None}) == "success"
    with create_session() as db:
        run = db.query(DagRun).filter(DagRun.dag_id == dag.dag_id).order_by(DagRun.id.desc()).first()
        states = {ti.task_id: ti.state for ti in db.query(TaskInstance).filter(TaskInstance.run_id == run.run_id)}
    assert states == {t: "success" for t in ("fetch_bars", "validate_bars", "version_dataset")}
    assert version_history()[-1]["sessions"] == ["2019-03-05"]
