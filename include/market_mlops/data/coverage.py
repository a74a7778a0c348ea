"""Calendar coverage of a batch, judged per (symbol, timeframe): which sessions a bar belongs to, which sessions a
symbol owes, which are missing. Pure functions of the bars and the calendars (the gate runs them through GX).

A symbol owes the sessions of its own calendar inside the batch's interval from its listing on: the earlier of its
first stored bar and its first bar in the batch. A stock listed years after the others owes nothing before its
first bar; a symbol that already has history owes every session of the interval; a batch with no bar at all owes
every session (nothing landed is a failure, never "nothing to do").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd

from market_mlops.config import DAILY_MINUTES
from market_mlops.data import calendar

COVERAGE_COLUMNS = ["symbol", "timeframe", "session", "bars", "expected_bars", "session_missing"]


def assign_sessions(exchange: str, ts: pd.Series, daily: bool) -> pd.Series:
    """The session date of each bar, or None for a bar on no session of `exchange`.

    Intraday bars belong to the session whose [open, close) holds them. A daily bar stamped at 00:00 UTC belongs to
    the session of its date (vendors date daily bars by session), one stamped at another time to the session it
    falls inside (stamped at the open: FX's Monday bar opens on Sunday evening); a bar dated on a weekend or
    holiday belongs to none."""
    sched = calendar.schedule(exchange)
    stamps = pd.to_datetime(ts, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    opens = sched["open"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    closes = sched["close"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    dates = np.array(sched.index, dtype="datetime64[D]")
    idx = np.searchsorted(closes, stamps, side="right")
    safe = np.minimum(idx, len(closes) - 1)
    inside = (idx < len(closes)) & (stamps >= opens[safe])
    session = np.where(inside, dates[safe], np.datetime64("NaT"))
    if daily:
        day = stamps.astype("datetime64[D]")
        dated = (stamps == day.astype("datetime64[ns]")) | np.isnat(session)
        session = np.where(dated, np.where(np.isin(day, dates), day, np.datetime64("NaT")), session)
    days = pd.to_datetime(session)
    return pd.Series([None if pd.isna(d) else d.date() for d in days], index=ts.index, dtype=object)


def coverage_table(bars: pd.DataFrame, calendars: Mapping[str, str], bar_minutes: Mapping[str, int],
                   start: dt.datetime, end: dt.datetime, pairs: list[tuple[str, str]],
                   listed: Mapping[tuple[str, str], pd.Timestamp | None]) -> pd.DataFrame:
    """One row per owed (symbol, timeframe, session): bars received vs bars the symbol's calendar expects.

    `bars` carries a `session` column (from `assign_sessions`); `listed` is each pair's first stored bar (None when
    the dataset has none)."""
    rows = []
    for symbol, tf in pairs:
        exchange = calendars[symbol]
        own = bars[(bars["symbol"] == symbol) & (bars["timeframe"] == tf)] if len(bars) else bars
        known = [t for t in (listed.get((symbol, tf)), own["ts"].min() if len(own) else None) if t is not None]
        if not known and len(bars):
            continue  # not listed yet: nothing stored, nothing sent, while other symbols sent bars
        first = pd.Timestamp(min(known)) if known else pd.Timestamp(start)  # an empty batch owes everything
        listing = assign_sessions(exchange, pd.Series([first]), daily=bar_minutes[tf] >= DAILY_MINUTES).iloc[0]
        listing = listing or first.date()
        owed = [d for d in calendar.sessions_in_interval(exchange, start, end) if d >= listing]
        if not owed:
            continue
        expected = calendar.bar_opens(exchange, bar_minutes[tf], owed).groupby("session").size()
        received = own["session"].value_counts() if len(own) else pd.Series(dtype=int)
        for day in owed:
            got = int(received.get(day, 0))
            rows.append({"symbol": symbol, "timeframe": tf, "session": day.isoformat(), "bars": got,
                         "expected_bars": int(expected.get(np.datetime64(day, "ns"), 0)), "session_missing": int(got == 0)})
    return pd.DataFrame(rows, columns=COVERAGE_COLUMNS)


def missing_summary(coverage: pd.DataFrame, files: Mapping[str, list[str]], shown: int = 3) -> list[str]:
    """One line per (symbol, timeframe) with missing sessions: how many, the first few, and the symbol's files."""
    lines = []
    missing = coverage[coverage["session_missing"] == 1]
    for (symbol, tf), part in missing.groupby(["symbol", "timeframe"], sort=True):
        days = sorted(part["session"])
        more = f" and {len(days) - shown} more" if len(days) > shown else ""
        where = ", ".join(files.get(symbol, [])) or "no file of this symbol in the batch"
        lines.append(f"{symbol} {tf}: {len(days)} session(s) missing: {', '.join(days[:shown])}{more} ({where})")
    return lines
