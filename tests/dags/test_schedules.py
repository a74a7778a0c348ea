"""Each DAG's schedule produces the data intervals it means (not Airflow 3's zero-width cron triggers)."""

from __future__ import annotations

from pathlib import Path

import pendulum
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags")).dags


def _intervals(dag, start, end):
    from airflow.timetables.base import TimeRestriction

    out, last = [], None
    restriction = TimeRestriction(earliest=start, latest=end, catchup=True)
    while True:
        info = dag.timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        if info is None:
            return out
        out.append(info)
        last = info.data_interval


def test_ingestion_runs_once_per_trading_session_and_skips_thanksgiving(dags):
    dag = dags["market_data_ingestion"]
    # What `airflow backfill create --from-date 2024-11-25 --to-date 2024-11-29` asks the timetable for.
    infos = _intervals(dag, pendulum.datetime(2024, 11, 25, tz="UTC"), pendulum.datetime(2024, 11, 29, tz="UTC"))
    closes = [i.data_interval.end for i in infos]
    # Mon-Wed full days, Thu 28 Nov closed, Fri 29 Nov closes early at 13:00 New York time (18:00 UTC).
    assert [c.to_date_string() for c in closes] == ["2024-11-25", "2024-11-26", "2024-11-27", "2024-11-29"]
    assert [i.logical_date.to_date_string() for i in infos] == ["2024-11-25", "2024-11-26", "2024-11-27", "2024-11-29"]
    assert closes[0].hour == 21 and closes[-1].hour == 18
    for earlier, later in zip(infos, infos[1:], strict=False):
        assert later.data_interval.start >= earlier.data_interval.end  # no overlap
    assert all(i.run_after > i.data_interval.end for i in infos)  # runs after the close


def test_manual_trigger_covers_the_last_closed_session(dags):
    dag = dags["market_data_ingestion"]
    interval = dag.timetable.infer_manual_data_interval(run_after=pendulum.datetime(2024, 11, 30, 12, tz="UTC"))
    assert interval.end == pendulum.datetime(2024, 11, 29, 18, tz="UTC")
    assert interval.start == pendulum.datetime(2024, 11, 29, tz="UTC")


def test_ingestion_timetable_round_trips_serialization(dags):
    from trading_sessions import TradingSessionTimetable

    table = dags["market_data_ingestion"].timetable
    again = TradingSessionTimetable.deserialize(table.serialize())
    assert again.serialize() == table.serialize() == {"exchange": "XNYS", "settle_minutes": 30}
