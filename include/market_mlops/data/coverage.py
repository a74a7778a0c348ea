"""Calendar coverage of a batch, judged per (symbol, timeframe): which sessions a bar belongs to, which sessions a
symbol owes, which are missing. Pure functions of the bars and the calendars (the gate runs them through GX).

A symbol owes the sessions of its own calendar inside the batch's interval from its listing on: the earlier of its
first stored bar and its first bar in the batch. A stock listed years after the others owes nothing before its
first bar; a symbol that already has history owes every session of the interval; a batch with no bar at all owes
every session (nothing landed is a failure, never "nothing to do"). In an import of history files each series also
ends where its file does (a delisted stock, an older download beside newer ones): it owes nothing after its own last
bar, and the import says so; a scheduled run owes every session of its interval.
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
    opens, closes, dates = calendar.session_bounds(exchange)
    stamps = pd.to_datetime(ts, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    idx = np.searchsorted(closes, stamps, side="right")
    safe = np.minimum(idx, len(closes) - 1)
    inside = (idx < len(closes)) & (stamps >= opens[safe])
    session = np.where(inside, dates[safe], np.datetime64("NaT"))
    if daily:
        day = stamps.astype("datetime64[D]")
        dated = (stamps == day.astype("datetime64[ns]")) | np.isnat(session)
        session = np.where(dated, np.where(np.isin(day, dates), day, np.datetime64("NaT")), session)
    return pd.Series(session.astype("datetime64[D]").astype(object), index=ts.index, dtype=object)  # dates, NaT: None


def last_sessions(bars: pd.DataFrame) -> dict[tuple[str, str], dt.date]:
    """Each pair's last session in `bars` (a `session` column): where a history file ends."""
    if not len(bars):
        return {}
    dated = bars.dropna(subset=["session"])
    return {(str(s), str(t)): max(part["session"]) for (s, t), part in dated.groupby(["symbol", "timeframe"])}


def ended_series(ends: Mapping[tuple[str, str], dt.date], calendars: Mapping[str, str], end: dt.datetime,
                 shown: int = 20) -> list[str]:
    """A line per pair whose history ends before the batch's last session of its calendar: it is owed nothing after
    its own last bar (a delisted stock, a file from an older download), and said, not refused."""
    lines = []
    for (symbol, tf), last in sorted(ends.items()):
        after = [d for d in calendar.sessions_in_interval(calendars[symbol], dt.datetime.combine(
            last + dt.timedelta(days=1), dt.time(), dt.UTC), end) if d > last]
        if after:
            lines.append(f"{symbol} {tf} ends {last.isoformat()}: its data stop {len(after)} session(s) before the "
                         f"batch's last, {after[-1].isoformat()} (owed nothing after; a retrain after it names it)")
    return lines[:shown] + ([f"... and {len(lines) - shown} more"] if len(lines) > shown else [])


def coverage_table(bars: pd.DataFrame, calendars: Mapping[str, str], bar_minutes: Mapping[str, int],
                   start: dt.datetime, end: dt.datetime, pairs: list[tuple[str, str]],
                   listed: Mapping[tuple[str, str], pd.Timestamp | None],
                   ends: Mapping[tuple[str, str], dt.date] | None = None) -> pd.DataFrame:
    """One row per owed (symbol, timeframe, session): bars received vs bars the symbol's calendar expects.

    `bars` carries a `session` column (from `assign_sessions`); `listed` is each pair's first stored bar (None when
    the dataset has none); `ends`: a pair's own last session, after which it owes nothing (an import of history
    files: each series ends where its file does; a scheduled run gives none, every series owes its whole interval).
    The bars are split by pair once and the expected bars per session computed once per calendar and timeframe (a
    fleet's import holds a thousand pairs)."""
    by_pair = {key: part for key, part in bars.groupby(["symbol", "timeframe"], sort=False)} if len(bars) else {}
    expected_of: dict[tuple[str, int], pd.Series] = {}
    sessions_of: dict[str, list[dt.date]] = {}
    tables = []
    for symbol, tf in pairs:
        exchange = calendars[symbol]
        own = by_pair.get((symbol, tf), bars.iloc[:0])
        known = [t for t in (listed.get((symbol, tf)), own["ts"].min() if len(own) else None) if t is not None]
        if not known and len(bars):
            continue  # not listed yet: nothing stored, nothing sent, while other symbols sent bars
        first = pd.Timestamp(min(known)) if known else pd.Timestamp(start)  # an empty batch owes everything
        listing = assign_sessions(exchange, pd.Series([first]), daily=bar_minutes[tf] >= DAILY_MINUTES).iloc[0]
        listing = listing or first.date()
        if exchange not in sessions_of:
            sessions_of[exchange] = calendar.sessions_in_interval(exchange, start, end)
        last = (ends or {}).get((symbol, tf))
        owed = [d for d in sessions_of[exchange] if d >= listing and (last is None or d <= last)]
        if not owed:
            continue
        if (exchange, bar_minutes[tf]) not in expected_of:
            opens = calendar.bar_opens(exchange, bar_minutes[tf], sessions_of[exchange])
            expected_of[(exchange, bar_minutes[tf])] = opens.groupby("session").size()
        expected = expected_of[(exchange, bar_minutes[tf])].reindex(np.array(owed, dtype="datetime64[ns]"), fill_value=0)
        received = own["session"].value_counts() if len(own) else pd.Series(dtype=int)
        got = received.reindex(owed, fill_value=0).to_numpy(dtype=int)
        tables.append(pd.DataFrame({"symbol": symbol, "timeframe": tf, "session": [d.isoformat() for d in owed],
                                    "bars": got, "expected_bars": expected.to_numpy(dtype=int),
                                    "session_missing": (got == 0).astype(int)}))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COVERAGE_COLUMNS)


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
