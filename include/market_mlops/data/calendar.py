"""Trading sessions and bar timestamps from a real exchange calendar (exchange-calendars).

A session's data interval is [start of the session date in UTC (or the open, if earlier), close of the session):
every bar of the session (stamped at its open, in UTC) falls inside it, weekends and holidays belong to no run,
and the run's logical date is the session date, so `backfill --from-date A --to-date B` covers sessions A..B.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from market_mlops.config import DAILY_MINUTES

if TYPE_CHECKING:
    from exchange_calendars import ExchangeCalendar

_CALENDAR_START = "2000-01-03"


@functools.cache
def exchange_calendar(exchange: str) -> ExchangeCalendar:
    import exchange_calendars

    try:
        return exchange_calendars.get_calendar(exchange, start=_CALENDAR_START)
    except exchange_calendars.errors.InvalidCalendarName:
        raise ValueError(f"unknown exchange calendar {exchange!r}: use an exchange-calendars code such as XNYS") from None


@dataclass(frozen=True)
class Session:
    date: dt.date
    open: pd.Timestamp  # UTC
    close: pd.Timestamp  # UTC
    previous_close: pd.Timestamp  # UTC
    interval_start: pd.Timestamp  # UTC, start of this session's data interval


def schedule(exchange: str) -> pd.DataFrame:
    """Session schedule (index: session date; columns open, close, previous_close; all UTC)."""
    return _schedule(exchange)


@functools.cache
def _schedule(exchange: str) -> pd.DataFrame:
    cal = exchange_calendar(exchange)
    frame = cal.schedule[["open", "close"]].copy()
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


def first_session_starting_at_or_after(exchange: str, moment: dt.datetime) -> Session | None:
    """First session whose data interval starts at or after `moment`."""
    sched = schedule(exchange)
    hits = sched.index[(sched["interval_start"] >= _utc(moment)).to_numpy()]
    return session(exchange, hits[0]) if len(hits) else None


def first_session_after(exchange: str, moment: dt.datetime) -> Session | None:
    """First session that closes strictly after `moment`."""
    sched = schedule(exchange)
    hits = sched.index[(sched["close"] > _utc(moment)).to_numpy()]
    return session(exchange, hits[0]) if len(hits) else None
