"""Airflow plugin: a timetable with one run per trading session of a real exchange calendar.

A run covers [session date 00:00 UTC, close of its session) and starts `settle_minutes` after the close (the
ingestion reads the bars from the session's open, which for FX is the evening before). Weekends and exchange holidays get no run; the logical date is the session date, so
`airflow backfill create --from-date A --to-date B` runs exactly the trading sessions from A to B.
Shared by the ingestion and drift DAGs. The calendar (exchange-calendars, pandas) is loaded lazily, on first
use, so parsing a DAG file that uses this timetable stays light.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pendulum
from airflow.plugins_manager import AirflowPlugin
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction, Timetable


def _pendulum(ts: Any) -> pendulum.DateTime:
    return pendulum.instance(ts.to_pydatetime()).in_timezone("UTC")


class TradingSessionTimetable(Timetable):
    """One run per session of `exchange`, data interval [session date, close), run `settle_minutes` after close."""

    def __init__(self, exchange: str = "XNYS", settle_minutes: int = 30) -> None:
        self.exchange = exchange
        self.settle_minutes = settle_minutes
        self.description = f"After each {exchange} trading session (+{settle_minutes} min), holidays skipped"

    @property
    def summary(self) -> str:
        return f"{self.exchange} sessions +{self.settle_minutes}m"

    def serialize(self) -> dict[str, Any]:
        return {"exchange": self.exchange, "settle_minutes": self.settle_minutes}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> TradingSessionTimetable:
        return cls(exchange=data["exchange"], settle_minutes=data["settle_minutes"])

    def _info(self, session: Any) -> DagRunInfo:
        """The run of a session: logical date = data interval start = 00:00 UTC of the session date (Airflow takes
        the logical date from the interval start; a session opening the evening before, FX on Sunday 17:00 New York,
        still runs under its own date). The ingestion widens the interval back to the open for the bars."""
        day = session.date
        start, end = pendulum.datetime(day.year, day.month, day.day, tz="UTC"), _pendulum(session.close)
        return DagRunInfo(
            run_after=end.add(minutes=self.settle_minutes),
            data_interval=DataInterval(start=start, end=end),
        )

    def infer_manual_data_interval(self, *, run_after: dt.datetime) -> DataInterval:
        """A manual run covers the last session closed by `run_after`; a run at midnight UTC of a session date (what
        `airflow dags test DAG 2024-11-26` asks for) covers that date's session, as a backfill of that date does."""
        from market_mlops.data.calendar import schedule, session, session_closing_at_or_before

        moment = pendulum.instance(run_after).in_timezone("UTC")
        day = moment.date()
        if moment == pendulum.datetime(day.year, day.month, day.day, tz="UTC") and day in schedule(self.exchange).index:
            info = self._info(session(self.exchange, day))
        else:
            info = self._info(session_closing_at_or_before(self.exchange, run_after))
        assert info.data_interval is not None
        return info.data_interval

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        from market_mlops.data.calendar import (
            first_session_after,
            first_session_dated_at_or_after,
            session_closing_at_or_before,
        )

        if last_automated_data_interval is not None:
            candidate = first_session_after(self.exchange, last_automated_data_interval.end)
        elif restriction.earliest is None:
            return None
        else:
            candidate = first_session_dated_at_or_after(self.exchange, restriction.earliest)
        if not restriction.catchup:  # like Airflow's own timetables: skip to the latest closed session
            latest_done = session_closing_at_or_before(self.exchange, pendulum.now("UTC"))
            if candidate is None or latest_done.close > candidate.close:
                candidate = latest_done
        if candidate is None:
            return None
        info = self._info(candidate)
        if restriction.latest is not None and info.data_interval is not None and info.data_interval.start > restriction.latest:
            return None
        return info


class TradingSessionsPlugin(AirflowPlugin):
    name = "trading_sessions"
    timetables = [TradingSessionTimetable]
