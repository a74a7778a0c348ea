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

    timetable = getattr(dag, "timetable", dag)
    out, last = [], None
    restriction = TimeRestriction(earliest=start, latest=end, catchup=True)
    while True:
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        if info is None:
            return out
        out.append(info)
        last = info.data_interval


def _nyse():
    """The session timetable of a stock-only universe (the default universe's FX pair moves closes to 17:00 NY)."""
    from trading_sessions import TradingSessionTimetable

    return TradingSessionTimetable(exchange="XNYS", settle_minutes=30)


def test_ingestion_runs_once_per_trading_session_and_skips_thanksgiving():
    dag = _nyse()
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


def test_manual_trigger_covers_the_last_closed_session():
    interval = _nyse().infer_manual_data_interval(run_after=pendulum.datetime(2024, 11, 30, 12, tz="UTC"))
    assert interval.end == pendulum.datetime(2024, 11, 29, 18, tz="UTC")
    assert interval.start == pendulum.datetime(2024, 11, 29, tz="UTC")


def test_a_run_dated_on_a_session_day_covers_that_session():
    """`airflow dags test market_data_ingestion 2024-11-26` means the session of 26 November (it used to ingest the
    25th: the last session closed by midnight)."""
    table = _nyse()
    interval = table.infer_manual_data_interval(run_after=pendulum.datetime(2024, 11, 26, tz="UTC"))
    assert (interval.start, interval.end) == (pendulum.datetime(2024, 11, 26, tz="UTC"),
                                              pendulum.datetime(2024, 11, 26, 21, tz="UTC"))
    saturday = table.infer_manual_data_interval(run_after=pendulum.datetime(2024, 11, 30, tz="UTC"))
    assert saturday.end == pendulum.datetime(2024, 11, 29, 18, tz="UTC")  # no session that day: the last closed one


def test_ingestion_timetable_round_trips_serialization(dags):
    from trading_sessions import TradingSessionTimetable

    table = dags["market_data_ingestion"].timetable
    again = TradingSessionTimetable.deserialize(table.serialize())
    assert again.serialize() == table.serialize() == {"exchange": "XNYS+FX", "settle_minutes": 30}  # the default


def test_the_default_mixed_universe_runs_under_session_dates_after_the_fx_close(dags):
    """Logical date = session date even when the session opened the evening before (FX, Sunday 17:00 New York), so
    `backfill --from-date A --to-date B` still plans exactly the sessions A..B."""
    infos = _intervals(dags["market_data_ingestion"], pendulum.datetime(2025, 4, 14, tz="UTC"),
                       pendulum.datetime(2025, 4, 21, tz="UTC"))
    assert [i.logical_date.to_date_string() for i in infos] == ["2025-04-14", "2025-04-15", "2025-04-16",
                                                                 "2025-04-17", "2025-04-21"]
    assert infos[-1].data_interval.end == pendulum.datetime(2025, 4, 21, 21, tz="UTC")  # FX close, 17:00 EDT


@pytest.mark.parametrize("calendar", ["XNYS", "FX", "24/7", "XNYS+FX"])
def test_a_timetable_still_schedules_two_years_after_the_process_started(calendar):
    """exchange-calendars builds one year ahead by default: a scheduler up for longer would find no next session."""
    from airflow.timetables.base import TimeRestriction
    from trading_sessions import TradingSessionTimetable

    table = TradingSessionTimetable(exchange=calendar, settle_minutes=30)
    later = pendulum.now("UTC").add(years=2)
    info = table.next_dagrun_info(last_automated_data_interval=None,
                                  restriction=TimeRestriction(earliest=later, latest=None, catchup=True))
    assert info is not None and later <= info.data_interval.start < later.add(days=5)
    follow = table.next_dagrun_info(last_automated_data_interval=info.data_interval,
                                    restriction=TimeRestriction(earliest=later, latest=None, catchup=True))
    assert follow is not None and follow.data_interval.start >= info.data_interval.end


def test_fx_sessions_run_sunday_evening_to_friday_evening_new_york_time():
    import datetime as dt

    from market_mlops.data.calendar import session, sessions_between

    week = sessions_between("FX", dt.date(2025, 11, 23), dt.date(2025, 11, 29))
    assert [d.isoformat() for d in week] == ["2025-11-24", "2025-11-25", "2025-11-26", "2025-11-27", "2025-11-28"]
    monday, friday = session("FX", week[0]), session("FX", week[-1])
    assert monday.open == pendulum.datetime(2025, 11, 23, 22, tz="UTC")  # Sunday 17:00 New York (EST)
    assert friday.close == pendulum.datetime(2025, 11, 28, 22, tz="UTC")  # Friday 17:00 New York
    assert dt.date(2025, 12, 25) not in sessions_between("FX", dt.date(2025, 12, 22), dt.date(2025, 12, 26))


def test_dags_accept_decades_of_history(dags):
    """The DAGs' start date is the config's `schedule.start_date` (1990 by default): a run before a DAG's start date
    gets no task instance and Airflow calls it a success, so old vendor history could not be loaded."""
    import datetime as dt

    from market_mlops.config import get_config

    start = get_config().schedule.start_date
    assert start <= dt.date(1990, 1, 2)
    assert {dag.start_date.date() for dag in dags.values()} == {start}
    week = _intervals(dags["market_data_ingestion"], pendulum.datetime(1995, 3, 6, tz="UTC"),
                      pendulum.datetime(1995, 3, 10, tz="UTC"))
    assert [i.logical_date.to_date_string() for i in week] == [f"1995-03-{d:02d}" for d in range(6, 11)]


def test_a_mixed_universe_runs_once_per_exchange_session_and_every_fx_session_belongs_to_one_run():
    """XNYS+FX: an FX session on an exchange holiday (Good Friday 2025-04-18) goes with the next exchange session,
    and a run's interval ends at the later close (FX 17:00 New York, an hour after the NYSE), so the runs tile time."""
    import datetime as dt

    from market_mlops.data.calendar import schedule, session, sessions_between, sessions_in_interval

    runs = sessions_between("XNYS+FX", dt.date(2025, 4, 14), dt.date(2025, 4, 25))
    assert runs == sessions_between("XNYS", dt.date(2025, 4, 14), dt.date(2025, 4, 25))
    assert dt.date(2025, 4, 18) not in runs
    covered = [d for day in runs for d in sessions_in_interval("FX", session("XNYS+FX", day).interval_start,
                                                               session("XNYS+FX", day).close)]
    assert covered == sessions_between("FX", dt.date(2025, 4, 14), dt.date(2025, 4, 25))  # each exactly once
    monday = session("XNYS+FX", dt.date(2025, 4, 21))
    assert monday.interval_start == session("FX", dt.date(2025, 4, 18)).open
    assert monday.close == session("FX", dt.date(2025, 4, 21)).close > session("XNYS", dt.date(2025, 4, 21)).close
    sched = schedule("XNYS+FX")
    assert (sched["interval_start"].iloc[1:].to_numpy() >= sched["close"].shift(1).iloc[1:].to_numpy()).all()


def test_the_timetable_follows_the_universe_calendars(monkeypatch):
    from market_mlops.orchestration import configured_calendar

    monkeypatch.setenv("MLOPS__UNIVERSE__SYMBOLS", "AAPL,EURUSD")
    monkeypatch.setenv("MLOPS__UNIVERSE__CALENDARS", "{EURUSD: FX}")
    assert configured_calendar() == "XNYS+FX"
    monkeypatch.setenv("MLOPS__UNIVERSE__EXCHANGE", "FX")
    assert configured_calendar() == "FX"


def test_a_run_without_a_logical_date_gets_the_interval_of_a_manual_run_for_every_scheduled_dag(dags):
    """REST and `airflow dags trigger` create runs without a logical date; `with_run_interval` fills their interval
    from the DAG's timetable as the DAG file declares it (the Task SDK's cron and asset-or-time schedules have no
    `infer_manual_data_interval` of their own: an asset-triggered retrain once failed on that)."""
    from market_mlops.orchestration import manual_interval

    after = pendulum.datetime(2025, 10, 1, 12, tz="UTC")
    ends = {dag_id: manual_interval(dag.timetable, after).end for dag_id, dag in dags.items()
            if dag.timetable.can_be_scheduled}
    assert ends["model_retrain"] == pendulum.datetime(2025, 10, 1, tz="UTC")  # the month before the run
    assert ends["weekly_weight_refresh"] == pendulum.datetime(2025, 9, 29, 6, tz="UTC")  # the Monday 06:00 before it
    assert ends["model_retention"] == pendulum.datetime(2025, 9, 28, 5, tz="UTC")
    assert ends["market_data_ingestion"] < after and ends["drift_check"] < after  # the last closed session
    assert set(ends) == {"model_retrain", "weekly_weight_refresh", "model_retention", "market_data_ingestion",
                         "drift_check"}
