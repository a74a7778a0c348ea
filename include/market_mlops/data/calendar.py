"""Trading sessions and bar timestamps of a calendar: an exchange (exchange-calendars codes such as XNYS), `FX`
(Sunday 17:00 to Friday 17:00 America/New_York, one session per weekday, New Year's Day and Christmas closed) or
`24/7` (crypto: one session per UTC day), or a composite such as `XNYS+FX` (what a universe that mixes calendars
runs on: see `composite_sessions`).

A session's data interval is [start of the session date in UTC (or the open, if earlier), close of the session):
every bar of the session (stamped at its open, in UTC) falls inside it, weekends and holidays belong to no run,
and the run's logical date is the session date, so `backfill --from-date A --to-date B` covers sessions A..B.

Calendars are built once per process from `CALENDAR_START` to `CALENDAR_YEARS_AHEAD` years after the build (an
exchange-calendars calendar built without an end stops one year ahead: a scheduler running longer would find no
next session).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from market_mlops.config import DAILY_MINUTES

CALENDAR_START = dt.date(1990, 1, 2)  # decades of vendor history
CALENDAR_YEARS_AHEAD = 10
FX, ALWAYS_OPEN = "FX", "24/7"
FX_CLOSED = ((1, 1), (12, 25))  # (month, day) with no FX session
_NEW_YORK = "America/New_York"


def calendar_end(built: dt.date | None = None) -> dt.date:
    built = built or dt.datetime.now(dt.UTC).date()
    return dt.date(built.year + CALENDAR_YEARS_AHEAD, 12, 31)


def _exchange_sessions(exchange: str, end: dt.date) -> pd.DataFrame:
    import exchange_calendars

    try:
        cal = exchange_calendars.get_calendar(exchange, start=CALENDAR_START.isoformat(), end=end.isoformat())
    except exchange_calendars.errors.InvalidCalendarName:
        raise ValueError(f"unknown calendar {exchange!r}: use an exchange-calendars code such as XNYS, "
                         f"or {FX!r}, or {ALWAYS_OPEN!r}") from None
    return cal.schedule[["open", "close"]]


def _fx_sessions(end: dt.date) -> pd.DataFrame:
    """Session D runs from 17:00 New York on the day before D to 17:00 on D, Monday to Friday."""
    days = pd.bdate_range(CALENDAR_START, end)
    days = days[[(d.month, d.day) not in FX_CLOSED for d in days]]
    close = (days + pd.Timedelta(hours=17)).tz_localize(_NEW_YORK).tz_convert("UTC")
    previous_day = days - pd.Timedelta(days=1) + pd.Timedelta(hours=17)
    opens = previous_day.tz_localize(_NEW_YORK).tz_convert("UTC")
    return pd.DataFrame({"open": opens, "close": close}, index=days)


def _always_open_sessions(end: dt.date) -> pd.DataFrame:
    days = pd.date_range(CALENDAR_START, end, freq="D")
    opens = days.tz_localize("UTC")
    return pd.DataFrame({"open": opens, "close": opens + pd.Timedelta(days=1)}, index=days)


def composite_sessions(primary: pd.DataFrame, others: list[pd.DataFrame]) -> pd.DataFrame:
    """The schedule of a universe that mixes calendars: one session per session of the primary calendar, spanning
    every other calendar's sessions dated after the previous primary session and up to this one (earliest open,
    latest close). Every session of every calendar then belongs to exactly one run: an FX session on a US holiday
    (Good Friday) goes with the next exchange session, and a run waits for the latest close it covers."""
    dates = pd.DatetimeIndex(primary.index)
    opens, closes = primary["open"].copy(), primary["close"].copy()
    for other in others:
        slot = dates.searchsorted(pd.DatetimeIndex(other.index), side="left")
        inside = slot < len(dates)
        grouped = other[inside].groupby(slot[inside]).agg({"open": "min", "close": "max"})
        opens.iloc[grouped.index] = np.minimum(opens.iloc[grouped.index].to_numpy(), grouped["open"].to_numpy())
        closes.iloc[grouped.index] = np.maximum(closes.iloc[grouped.index].to_numpy(), grouped["close"].to_numpy())
    return pd.DataFrame({"open": pd.to_datetime(opens, utc=True), "close": pd.to_datetime(closes, utc=True)},
                        index=primary.index)


def sessions_table(name: str, end: dt.date) -> pd.DataFrame:
    """Index: session dates; columns open, close (UTC) from CALENDAR_START to `end`."""
    if "+" in name:
        primary, *others = name.split("+")
        return composite_sessions(sessions_table(primary, end), [sessions_table(o, end) for o in others])
    if name == FX:
        return _fx_sessions(end)
    if name == ALWAYS_OPEN:
        return _always_open_sessions(end)
    return _exchange_sessions(name, end)


@dataclass(frozen=True)
class Session:
    date: dt.date
    open: pd.Timestamp  # UTC
    close: pd.Timestamp  # UTC
    previous_close: pd.Timestamp  # UTC
    interval_start: pd.Timestamp  # UTC, start of this session's data interval


def schedule(exchange: str) -> pd.DataFrame:
    """Session schedule (index: session date; columns open, close, previous_close, interval_start; all UTC)."""
    return _schedule(exchange, calendar_end())


def session_bounds(exchange: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(opens, closes, dates) of every session as numpy arrays (naive UTC nanoseconds, days), made once per calendar:
    assigning bars to sessions per file converted the whole schedule each time (20 ms a file)."""
    return _session_bounds(exchange, calendar_end())


@functools.cache
def _session_bounds(exchange: str, end: dt.date) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sched = _schedule(exchange, end)
    opens = sched["open"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    closes = sched["close"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    return opens, closes, np.array(sched.index, dtype="datetime64[D]")


@functools.cache
def _schedule(exchange: str, end: dt.date) -> pd.DataFrame:
    frame = sessions_table(exchange, end).copy()
    frame["previous_close"] = frame["close"].shift(1)
    frame.loc[frame.index[0], "previous_close"] = frame["open"].iloc[0] - pd.Timedelta(hours=12)
    midnight = pd.DatetimeIndex(frame.index).tz_localize("UTC") if pd.DatetimeIndex(frame.index).tz is None else pd.DatetimeIndex(frame.index)
    frame["interval_start"] = np.minimum(midnight.to_numpy(), frame["open"].to_numpy())
    frame["interval_start"] = pd.to_datetime(frame["interval_start"], utc=True)
    frame.index = pd.DatetimeIndex(frame.index).date
    return frame


def _utc(moment: dt.datetime | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(moment)
    return ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")


def sessions_between(exchange: str, start: dt.date, end: dt.date) -> list[dt.date]:
    """Trading session dates with start <= date <= end."""
    sched = schedule(exchange)
    return [d for d in sched.index if start <= d <= end]


def session(exchange: str, date: dt.date) -> Session:
    sched = schedule(exchange)
    if date not in sched.index:
        raise ValueError(f"{date} is not a trading session of {exchange} (weekend or holiday)")
    row = sched.loc[date]
    return Session(date, row["open"], row["close"], row["previous_close"], row["interval_start"])


def session_closing_at_or_before(exchange: str, moment: dt.datetime) -> Session:
    """The latest session whose close is at or before `moment` (what a run after that moment covers)."""
    sched = schedule(exchange)
    ts = _utc(moment)
    closes = sched["close"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    idx = int(np.searchsorted(closes, ts.tz_localize(None).to_datetime64(), side="right")) - 1
    if idx < 0:
        raise ValueError(f"no {exchange} session closes before {moment}")
    return session(exchange, sched.index[idx])


def sessions_in_interval(exchange: str, start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    """Sessions whose close lies in (start, end]: the sessions a data interval covers."""
    sched = schedule(exchange)
    s, e = _utc(start), _utc(end)
    mask = (sched["close"] > s) & (sched["close"] <= e)
    return list(sched.index[mask.to_numpy()])


def bar_opens(exchange: str, minutes: int, sessions: list[dt.date]) -> pd.DataFrame:
    """Open timestamps (UTC) of every bar of `minutes` length in the given sessions, with the session date.

    Daily bars are stamped at the session open; intraday bars every N minutes from the open while before the close.
    """
    sched = schedule(exchange).loc[sessions]
    opens = sched["open"].to_numpy(dtype="datetime64[ns]")
    closes = sched["close"].to_numpy(dtype="datetime64[ns]")
    if minutes >= DAILY_MINUTES:
        ts = opens
        sess = np.array(sessions, dtype="datetime64[D]")
    else:
        step = np.timedelta64(minutes, "m")
        counts = np.ceil((closes - opens) / step).astype(int)
        sess = np.repeat(np.array(sessions, dtype="datetime64[D]"), counts)
        offsets = np.concatenate([np.arange(c) for c in counts]) if len(counts) else np.array([], dtype=int)
        ts = np.repeat(opens, counts) + offsets * step
    return pd.DataFrame({"ts": pd.to_datetime(ts).tz_localize("UTC"), "session": sess.astype("datetime64[ns]")})


def first_session_dated_at_or_after(exchange: str, moment: dt.datetime) -> Session | None:
    """First session whose date (00:00 UTC) is at or after `moment`: where a backfill from `moment` starts."""
    sched = schedule(exchange)
    ts = _utc(moment)
    day = ts.date() if ts == ts.normalize() else ts.date() + dt.timedelta(days=1)
    i = int(np.searchsorted(np.array(sched.index, dtype="datetime64[D]"), np.datetime64(day)))
    return session(exchange, sched.index[i]) if i < len(sched.index) else None


def first_session_after(exchange: str, moment: dt.datetime) -> Session | None:
    """First session that closes strictly after `moment`."""
    sched = schedule(exchange)
    hits = sched.index[(sched["close"] > _utc(moment)).to_numpy()]
    return session(exchange, hits[0]) if len(hits) else None
