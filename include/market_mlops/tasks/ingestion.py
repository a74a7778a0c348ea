"""Ingestion and versioning: the task bodies of the `market_data_ingestion` DAG, runnable without Airflow.

fetch_batch -> validate_batch (the gate; a failing batch is quarantined, alerted and stops here; a passing one is
staged where every worker reads it, `storage.batches_url`) -> version_dataset (the one writer: merge into the head
version's partitions, DVC add + push, version log and head in the SQL store). Every step is keyed on the run's data
interval and safe to rerun: raw files are never modified, outputs are replaced atomically, merges are upserts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, NoReturn, cast

import numpy as np
import pandas as pd

from market_mlops.config import PipelineConfig, get_config
from market_mlops.contracts import FetchedBatch, RawFileRef, ValidatedBatch, VersionRecord
from market_mlops.data import calendar
from market_mlops.data.bars import COLUMNS
from market_mlops.data.coverage import assign_sessions, coverage_table, last_sessions, missing_summary
from market_mlops.data.dataset import first_bar
from market_mlops.data.object_store import read_bytes, write_bytes
from market_mlops.data.sources import BadFile, RawFile, make_source, read_raw_file, symbol_in_name
from market_mlops.data.storage import parquet_bytes
from market_mlops.data.validation import FileResult, Finding, summarize, validate_files, validate_frame
from market_mlops.data.versioning import head_dataset
from market_mlops.monitoring.alerts import Alert, send_alert

log = logging.getLogger(__name__)


class BatchRejected(ValueError):
    """The batch failed the gate; it is quarantined and nothing was merged or published."""

    hint = ('read the quarantine report named above, fix or replace those files in the landing folder (or '
            're-run with accept_gaps / allow_restatement if the data is right), then trigger '
            'market_data_ingestion again')

    def __init__(self, message: str, results: list[FileResult] | None = None, folder: str = "") -> None:
        super().__init__(message)
        self.results = results or []  # each file's (and each batch check's) result
        self.folder = folder  # where the batch was quarantined


def validation_report_uri(cfg: PipelineConfig, interval_start: str, interval_end: str) -> str:
    """Where a passing batch's validation report is kept (one per interval; a rerun replaces it)."""
    key = _interval_key(dt.datetime.fromisoformat(interval_start), dt.datetime.fromisoformat(interval_end))
    return f"{cfg.batches_url}/validation/{key}.json"


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, indent=2, sort_keys=True, default=str).encode()


def _interval_key(start: dt.datetime, end: dt.datetime) -> str:
    return f"{start.astimezone(dt.UTC):%Y%m%dT%H%M}_{end.astimezone(dt.UTC):%Y%m%dT%H%M}"


def fetch_batch(interval_start: dt.datetime, interval_end: dt.datetime, symbols: list[str] | None = None,
                timeframes: list[str] | None = None, source: str | None = None,
                history_start: dt.date | None = None, cfg: PipelineConfig | None = None) -> FetchedBatch:
    """The raw files of every session in the interval, from the chosen source (nothing is modified).

    `history_start` widens the interval back to that date: an initial load through the same gate. The interval
    then starts where its first session's bars may start (its open, when that is before 00:00 UTC of its date).
    """
    cfg = cfg or get_config()
    runs_on = cfg.universe.schedule_calendar
    if history_start is not None:
        first = calendar.first_session_dated_at_or_after(runs_on, dt.datetime.combine(history_start, dt.time(), dt.UTC))
        if first is not None and first.interval_start.to_pydatetime() < interval_start:
            interval_start = first.interval_start.to_pydatetime()
    sessions = calendar.sessions_in_interval(runs_on, interval_start, interval_end)
    if sessions:
        interval_start = min(interval_start, calendar.session(runs_on, sessions[0]).interval_start.to_pydatetime())
    if history_start is None:
        alert_if_data_stale(interval_start, cfg)
    pairs = cfg.pairs(symbols, timeframes, with_benchmark=True)
    symbols = sorted({s for s, _ in pairs})
    timeframes = sorted({t for _, t in pairs})
    src = make_source(source or cfg.source.kind, cfg)
    files = src.raw_files(session_dates(cfg, symbols, interval_start, interval_end), symbols, timeframes)
    log.info("fetched %d raw file(s) for %d session(s) %s from source %s", len(files), len(sessions),
             [str(s) for s in sessions], src.name)
    return {
        "interval_start": interval_start.isoformat(), "interval_end": interval_end.isoformat(),
        "sessions": [s.isoformat() for s in sessions], "symbols": symbols, "timeframes": timeframes,
        "source": src.name, "files": [{"uri": f.uri, "name": f.name} for f in files],
    }


def stale_data_message(head_end: dt.datetime, due: dt.datetime, missed: list[dt.date], lag_days: int) -> str | None:
    """Why the data is stale when the newest version ends before the session preceding this run (less the allowed
    lag), else None (pure). `missed`: the sessions between them, which this run does not ingest."""
    if head_end >= due - dt.timedelta(days=lag_days) or not missed:
        return None
    return (f"stale data: the newest data version ends {head_end:%Y-%m-%d %H:%M} UTC, {len(missed)} session(s) "
            f"before this run's (the last closed {due:%Y-%m-%d %H:%M} UTC; allowed lag {lag_days} days): backfill "
            f"market_data_ingestion over {missed[0]} .. {missed[-1]} (a backfill in the UI, or a run with "
            f"history_start={missed[0]}); this run ingests only its own session")


def alert_if_data_stale(interval_start: dt.datetime, cfg: PipelineConfig) -> str | None:
    """A critical alert when runs were missed (a paused DAG, a failed week): the newest data version stops sessions
    before this run's, which only ingests its own (catchup is off). The run goes on; the message is returned."""
    from market_mlops.data.versioning import version_history
    from market_mlops.tasks.retrain import last_session_close

    history = version_history(cfg)
    if not history:
        return None  # the first run: nothing to be stale yet
    head_end = max(dt.datetime.fromisoformat(r["interval_end"]).astimezone(dt.UTC) for r in history)
    due = last_session_close(interval_start, cfg)
    missed = calendar.sessions_in_interval(cfg.universe.schedule_calendar, head_end, interval_start)
    message = stale_data_message(head_end, due, missed, cfg.training.max_data_lag_days)
    if message:
        send_alert(Alert(title="Stale data: ingestion missed sessions", severity="critical", kind="staleness",
                         facts={"newest_data": f"{head_end:%Y-%m-%d %H:%M}", "sessions_missed": len(missed)},
                         lines=[message]))
    return message


def session_dates(cfg: PipelineConfig, symbols: list[str], start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    """Every session date the interval holds on the symbols' own calendars (an FX pair's Good Friday in a stock
    universe's Monday run): the landing folders a run reads."""
    calendars = {cfg.universe.calendar_of(s) for s in symbols}
    return sorted({d for cal in calendars for d in calendar.sessions_in_interval(cal, start, end)})


def _file_level_failure(error: BadFile) -> FileResult:
    return FileResult(file=error.file, rows=0, findings=[
        Finding(check=error.check, expectation="normalization", severity="critical", success=False, sample=[error.detail])])


def _quarantine(cfg: PipelineConfig, key: str, files: list[RawFileRef], report: dict[str, Any]) -> str:
    """Copy the raw batch and its report aside, under `storage.batches_url` (the originals stay where they are)."""
    folder = f"{cfg.batches_url}/quarantine/{key}/{report['result_id']}"
    for f in files:
        if f["uri"].startswith("s3://") or Path(f["uri"]).exists():
            write_bytes(f"{folder}/files/{f['name'].replace('/', '__')}", read_bytes(f["uri"]))
    write_bytes(f"{folder}/report.json", _json_bytes(report))
    return folder


def validate_batch(fetched: FetchedBatch, run_id: str = "manual", cfg: PipelineConfig | None = None,
                   allow_restatement: bool = False, accept_gaps: bool = False,
                   read: dict[str, pd.DataFrame] | None = None, drop_off_session: bool | None = None) -> ValidatedBatch:
    """Normalize and gate every raw file, and the batch against the stored history; on failure quarantine + alert +
    raise BatchRejected (one line). `allow_restatement`: stored bars may change (counted, alerted); `accept_gaps`:
    a price jump at the boundary with the stored bars is a warning, not a rejection. `read`: files the caller has
    already normalised (by URI, with their sessions), not read again. `drop_off_session` (default
    `validation.drop_off_session`): bars outside their calendar's sessions are dropped and listed, not refused."""
    cfg = cfg or get_config()
    start, end = dt.datetime.fromisoformat(fetched["interval_start"]), dt.datetime.fromisoformat(fetched["interval_end"])
    seconds: dict[str, float] = {}
    dropped: list[str] = []
    drop = cfg.validation.drop_off_session if drop_off_session is None else drop_off_session
    results, bars = gate_files(fetched, cfg, read or {}, seconds, dropped if drop else None)
    for line in dropped:
        log.warning("dropped a bar outside its calendar's sessions: %s", line)
    started = time.perf_counter()
    # Bars of a file that failed its row checks (a bad cell, duplicated stamps) are not compared with the stored
    # history: they would read as a restatement or a split on top of the real problem.
    refused = {r.file for r in results if not r.success}
    compared = bars[~bars["_file"].isin(refused)] if refused and "_file" in bars else bars
    history, changed = history_result(compared, cfg, allow_restatement, accept_gaps)
    seconds["gate"] = round(seconds.get("gate", 0.0) + time.perf_counter() - started, 3)
    if history is not None:
        results.append(history)
    key = _interval_key(start, end)
    report = gate_report(fetched, results, key, run_id)
    for warning in report["warnings"]:
        log.warning("validation warning: %s", warning)
    if not report["success"]:
        _reject(cfg, key, fetched, results, report)

    staged = f"{cfg.batches_url}/staging/{key}.parquet"
    write_bytes(staged, parquet_bytes(bars[COLUMNS].sort_values(["symbol", "timeframe", "ts"]).reset_index(drop=True)))
    write_bytes(validation_report_uri(cfg, fetched["interval_start"], fetched["interval_end"]), _json_bytes(report))
    log.info("validation passed: %d file(s), %d rows, %d warning(s), %d stored bar(s) restated, result %s",
             len(fetched["files"]), len(bars), len(report["warnings"]), sum(changed.values()), report["result_id"])
    if changed:
        send_alert(Alert(title="Stored market history changed", severity="warning", kind="restatement",
                         facts={"interval": key, "bars changed": sum(changed.values()), "result": report["result_id"]},
                         lines=[w for w in report["warnings"] if "restatement" in w][:5]
                         + ["models trained on earlier data versions keep their lineage to them"]))
    split_rows = bars[bars["split_ratio"] != 1.0] if "split_ratio" in bars else bars.iloc[:0]
    splits = [{"symbol": str(r.symbol), "timeframe": str(r.timeframe), "ts": pd.Timestamp(r.ts).isoformat(),
               "ratio": float(r.split_ratio)} for r in split_rows.itertuples()]
    return {"interval_start": fetched["interval_start"], "interval_end": fetched["interval_end"],
            "sessions": fetched["sessions"], "staged": staged, "rows": len(bars), "result_id": report["result_id"],
            "rows_changed": changed, "seconds": seconds, "dropped": dropped, "splits": splits}


def gate_files(fetched: FetchedBatch, cfg: PipelineConfig, read: dict[str, pd.DataFrame] | None = None,
               seconds: dict[str, float] | None = None,
               dropped: list[str] | None = None) -> tuple[list[FileResult], pd.DataFrame]:
    """The GX results of every file (row checks) and of the batch (calendar coverage), and the bars read. With a
    `dropped` list, bars outside their calendar's sessions are taken out before the checks and listed in it."""
    start, end = dt.datetime.fromisoformat(fetched["interval_start"]), dt.datetime.fromisoformat(fetched["interval_end"])
    params = {
        "interval_start_s": int(start.timestamp()), "interval_end_s": int(end.timestamp()),
        "symbols": fetched["symbols"], "timeframes": fetched["timeframes"],
        "max_abs_log_return": float(np.log1p(cfg.validation.max_abs_return)),
        "reject_abs_log_return": float(np.log(5.0)),
        "max_missing_sessions": cfg.validation.max_missing_sessions,
    }
    unreadable: dict[str, FileResult] = {}
    named: list[tuple[str, pd.DataFrame]] = []
    files_of: dict[str, list[str]] = {}
    started = time.perf_counter()
    for f in fetched["files"]:
        raw = RawFile(uri=f["uri"], name=f["name"])
        if read and f["uri"] in read:
            frame = read[f["uri"]]
        else:
            try:
                frame = with_sessions(read_raw_file(raw, f.get("symbol"), f.get("timeframe"), cfg.bar_minutes,
                                                    cfg.source.price_basis), cfg)
            except BadFile as error:
                unreadable[raw.name] = _file_level_failure(error)
                continue
        frame = with_stored_splits(frame, cfg)
        if dropped is not None and not frame["on_session"].all():
            off = frame[~frame["on_session"]]
            dropped += [f"{raw.name}: {r.symbol} {r.timeframe} bar at {r.ts:%Y-%m-%d %H:%M} UTC" for r in off.itertuples()]
            frame = frame[frame["on_session"]].reset_index(drop=True)
        named.append((raw.name, frame.assign(_file=raw.name)))
        for symbol in frame["symbol"].unique():
            files_of.setdefault(str(symbol), []).append(raw.name)
    read_at = time.perf_counter()
    checked = validate_files("bars", named, params)
    for name, frame in named:
        checked[name].findings += unconfigured_pair_findings(frame, cfg)
    for name, frame in named:
        if checked[name].success:  # a bad cell must not also read as a split (or anything else of the prices)
            checked[name].findings += corporate_action_findings(frame, cfg.source.price_basis)
    results = [unreadable.get(f["name"]) or checked[f["name"]] for f in fetched["files"]]
    frames = [frame for _, frame in named]
    bars = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*COLUMNS, "session"])
    # A symbol whose file failed (unreadable, or rows of another symbol) is reported there, not also as a gap.
    excused = {symbol_in_name(r.file, cfg.timeframes) for r in results if not r.success} - {None}
    if frames or not fetched["files"]:  # files that could not be read at all are reported as such, not as gaps
        passed = [frame for name, frame in named if checked[name].success]
        results.append(_coverage_result(bars, _judged_interval(fetched, passed, cfg), cfg, params, files_of,
                                        {str(s) for s in excused}))
    if seconds is not None:
        seconds["normalise"] = round(read_at - started, 3)
        seconds["gate"] = round(time.perf_counter() - read_at, 3)
    return results, bars


def _sessions_apart(exchange: str, stored: pd.DataFrame, new: pd.DataFrame) -> int:
    """Sessions after the last stored bar's date up to the first new bar's (UTC dates; 1 at least)."""
    from market_mlops.data import calendar

    if stored.empty:
        return 1
    last, first = stored["ts"].iloc[-1].date(), new["ts"].iloc[0].date()
    return max(1, len(calendar.sessions_between(exchange, last + dt.timedelta(days=1), first)))


def history_result(bars: pd.DataFrame, cfg: PipelineConfig, allow_restatement: bool,
                   accept_gaps: bool) -> tuple[FileResult | None, dict[str, int]]:
    """The batch against the stored bars of each (symbol, timeframe): continuity at its first bar and the stored bars
    it would change. Returns the findings (None when nothing is stored yet) and the rows changed per symbol."""
    from market_mlops.data.continuity import Break, Restatement, continuity_break, restatement
    from market_mlops.data.dataset import load_bars

    root = head_dataset(cfg)
    limit = float(np.log1p(cfg.validation.max_abs_return))
    breaks: list[Break] = []
    restated: list[Restatement] = []
    changed: dict[str, int] = {}
    checked = bars[bars["ts_step_ok"].astype(bool)] if len(bars) else bars
    for (symbol, tf), part in checked.groupby(["symbol", "timeframe"], sort=True):
        if str(tf) not in cfg.timeframes or first_bar(root, str(symbol), str(tf)) is None:
            continue
        part = part.sort_values("ts")
        first, last = part["ts"].iloc[0].to_pydatetime(), part["ts"].iloc[-1].to_pydatetime()
        lookback = max(dt.timedelta(days=45), dt.timedelta(minutes=40 * cfg.spec(str(tf)).minutes))
        stored = load_bars(root, str(tf), [str(symbol)], until=last + dt.timedelta(seconds=1), since=first - lookback)
        # The boundary is where the batch's bars stop being stored ones: a session ingested again (the same bars)
        # has none, and its move from the day before was judged when it was first stored.
        fresh = part[~part["ts"].isin(stored["ts"])]
        if not fresh.empty:
            before = stored[stored["ts"] < fresh["ts"].iloc[0]]
            if before.empty:
                before = load_bars(root, str(tf), [str(symbol)], until=fresh["ts"].iloc[0].to_pydatetime()).tail(40)
            found = continuity_break(str(symbol), str(tf), fresh, before, limit,
                                     _sessions_apart(cfg.universe.calendar_of(str(symbol)), before, fresh))
            if found is not None:
                breaks.append(found)
        change = restatement(str(symbol), str(tf), part, stored[stored["ts"] >= part["ts"].iloc[0]])
        if change is not None:
            restated.append(change)
            changed[str(symbol)] = changed.get(str(symbol), 0) + change.changed
    if not breaks and not restated:
        return None, {}
    findings = []
    for kind, tolerated, hint in (
            ("unit_change", False, ""), ("volume_scale", False, ""),
            ("split", cfg.source.price_basis == "raw", " (stored history is on the old shares: re-import the "
             "split-adjusted history with allow_restatement, or set source.price_basis: raw)"),
            ("price_gap", accept_gaps, " (if the move is real, rerun with accept_gaps)")):
        lines = [b.message + ("" if tolerated else hint) for b in breaks if b.kind == kind]
        if lines:
            findings.append(Finding(check=f"continuity_{kind}", expectation="stored_history", success=False,
                                    severity="warning" if tolerated else "critical", unexpected_count=len(lines),
                                    sample=lines))
    if restated:
        findings.append(Finding(
            check="restatement", expectation="stored_history", success=False, unexpected_count=sum(changed.values()),
            severity="warning" if allow_restatement else "critical",
            sample=[r.describe() + ("" if allow_restatement else " (rerun with allow_restatement to accept)")
                    for r in restated]))
    return FileResult(file="<stored history>", rows=len(bars), findings=findings), (changed if allow_restatement else {})


def with_stored_splits(frame: pd.DataFrame, cfg: PipelineConfig) -> pd.DataFrame:
    """A file's bars with the splits the stored history already took out (`corporate_actions.stored_splits`: a file
    without `Adj Close` that repeats a split an earlier import found and logged with its data version) marked and, on
    the adjusted basis, taken out of its prices (and of its volumes unless its vendor adjusted them): such a split is
    neither an extreme return nor a restatement. A jump the stored history does not know stays what it is (a
    restatement, a gap)."""
    from market_mlops.data.bars import PRICE_COLUMNS
    from market_mlops.data.corporate_actions import (
        adjust_series,
        split_like_moves,
        stored_splits,
        volumes_adjusted,
    )
    from market_mlops.data.dataset import load_bars
    from market_mlops.data.sources import with_returns
    from market_mlops.data.versioning import recorded_splits

    root = head_dataset(cfg)
    found = False
    known: set[tuple[str, str, str, float]] | None = None
    for (symbol, tf), part in frame.groupby(["symbol", "timeframe"], sort=False):
        if (str(tf) not in cfg.timeframes or not part["ts"].is_monotonic_increasing
                or not split_like_moves(part) or first_bar(root, str(symbol), str(tf)) is None):
            continue  # the stored bars are read only for a file whose prices jump by a split ratio somewhere
        stored = load_bars(root, str(tf), [str(symbol)], since=part["ts"].iloc[0].to_pydatetime(),
                           until=part["ts"].iloc[-1].to_pydatetime() + dt.timedelta(seconds=1))
        known = recorded_splits(cfg) if known is None else known  # a split an import found and logged
        splits = [s for s in stored_splits(part, stored) if (part.loc[part["ts"] == s.ts, "split_ratio"] == 1.0).all()
                  and (str(symbol), str(tf), s.ts.isoformat()[:10], round(s.ratio, 4)) in known]
        if not splits:
            continue
        found = True
        for split in splits:
            at = part.index[part["ts"] == split.ts]
            frame.loc[at, "split_ratio"] = split.ratio
            frame.loc[at, "split_source"] = split.evidence
        if cfg.source.price_basis == "adjusted":
            columns = PRICE_COLUMNS + ([] if volumes_adjusted(part, stored, splits) else ["volume"])
            frame.loc[part.index, columns] = adjust_series(part, splits, None)[columns]
    return with_returns(frame, cfg.source.price_basis) if found else frame


def corporate_action_findings(frame: pd.DataFrame, price_basis: str) -> list[Finding]:
    """The splits a file shows, each with its date, as a warning (a corporate action, not a market move)."""
    from market_mlops.data.corporate_actions import Split

    rows = frame[frame["split_ratio"] != 1.0]
    if rows.empty:
        return []
    done = "prices before it adjusted" if price_basis == "adjusted" else "raw prices kept"
    lines = [Split(row.ts, float(row.split_ratio), "").describe(str(row.symbol), str(row.timeframe))
             + f" ({'; '.join(filter(None, [str(getattr(row, 'split_source', '') or ''), done]))})"
             for row in rows.itertuples()]
    return [Finding(check="corporate_action", expectation="split_detection", severity="warning", success=False,
                    unexpected_count=len(rows), sample=lines)]


def with_sessions(frame: pd.DataFrame, cfg: PipelineConfig) -> pd.DataFrame:
    """The session of each bar on its symbol's calendar, and whether it has one (`on_session`, a gate check)."""
    sessions = pd.Series(None, index=frame.index, dtype=object)
    for (symbol, tf), part in frame.groupby(["symbol", "timeframe"], sort=False):
        daily = str(tf) in cfg.timeframes and cfg.spec(str(tf)).daily
        sessions.loc[part.index] = assign_sessions(cfg.universe.calendar_of(str(symbol)), part["ts"], daily)
    return frame.assign(session=sessions, on_session=sessions.notna())


def unconfigured_pair_findings(frame: pd.DataFrame, cfg: PipelineConfig) -> list[Finding]:
    """A (symbol, timeframe) the universe's groups do not model (an FX pair's d1 file when its group has h1 only):
    refused by name, never stored as a pair nothing trains on."""
    universe = cfg.universe
    if not universe.groups or frame.empty:
        return []
    found = sorted({(str(s), str(t)) for s, t in zip(frame["symbol"], frame["timeframe"], strict=True)
                    if str(s) != universe.benchmark and str(s) in universe.symbols and not universe.models(str(s), str(t))})
    if not found:
        return []
    lines = []
    for symbol, timeframe in found:
        group = universe.group_of(symbol)
        assert group is not None
        lines.append(f"{symbol} {timeframe} is not a configured pair (group {group.name}: {', '.join(group.timeframes)})")
    return [Finding(check="pair_configured", expectation="universe.groups", severity="critical", success=False,
                    unexpected_count=len(lines), sample=lines)]


def _judged_interval(fetched: FetchedBatch, passed: list[pd.DataFrame], cfg: PipelineConfig) -> FetchedBatch:
    """The interval coverage is judged over. An import's interval spans its files; a file the row checks refused
    must not stretch it (an FX file to 2018 made four good 2013 stock files "miss" five years of sessions). A
    scheduled run's interval is its own, whatever its files hold."""
    from market_mlops.data import calendar

    if fetched.get("source") != "import" or not passed:
        return fetched
    starts, ends = [], []
    for frame in passed:
        for symbol, part in frame[frame["on_session"]].groupby("symbol"):
            cal = cfg.universe.calendar_of(str(symbol))
            starts.append(calendar.session(cal, min(part["session"])).interval_start)
            ends.append(calendar.session(cal, max(part["session"])).close)
    if not starts:
        return fetched
    return {**fetched, "interval_start": min(starts).to_pydatetime().isoformat(),
            "interval_end": max(ends).to_pydatetime().isoformat()}


def _coverage_result(bars: pd.DataFrame, fetched: FetchedBatch, cfg: PipelineConfig, params: dict[str, Any],
                     files_of: dict[str, list[str]], excused: set[str]) -> FileResult:
    """Coverage per (symbol, timeframe) from its listing; a failure names the symbol, the sessions and its files.
    `excused`: symbols whose file already failed (their gaps follow from it)."""
    start, end = dt.datetime.fromisoformat(fetched["interval_start"]), dt.datetime.fromisoformat(fetched["interval_end"])
    pairs = [(s, t) for s in fetched["symbols"] for t in fetched["timeframes"]
             if s == cfg.universe.benchmark or cfg.universe.models(s, t)]
    root = head_dataset(cfg)
    listed = {(s, t): first_bar(root, s, t) for s, t in pairs}
    calendars = {s: cfg.universe.calendar_of(s) for s in fetched["symbols"]}
    on_session = bars[bars["on_session"]] if len(bars) else bars
    ends = last_sessions(on_session) if fetched.get("source") == "import" else None  # history files end on their own
    coverage = coverage_table(on_session, calendars, cfg.bar_minutes, start, end, pairs, listed, ends)
    coverage = coverage[~coverage["symbol"].isin(excused)]
    result = validate_frame("bar_coverage", coverage, "<batch coverage>", params, where=["symbol", "timeframe", "session"])
    lines = missing_summary(coverage, files_of)
    for finding in result.findings:
        if finding.check == "missing_sessions_within_tolerance" and not finding.success:
            finding.sample = lines
    return result


def gate_report(fetched: FetchedBatch, results: list[FileResult], key: str, run_id: str) -> dict[str, Any]:
    """The validation report (kept with a passing batch, quarantined with a failing one); its id hashes its content."""
    report: dict[str, Any] = {
        "interval_start": fetched["interval_start"], "interval_end": fetched["interval_end"], "run_id": run_id,
        "source": fetched["source"], "files": [r.to_dict() for r in results],
        "success": all(r.success for r in results),
        "warnings": [f"{r.file}: {w.check}" + (f" [{'; '.join(str(x) for x in w.sample[:3])}]" if w.sample else "")
                     for r in results for w in r.warnings],
    }
    digest = hashlib.sha256(json.dumps(report, sort_keys=True, default=str).encode()).hexdigest()[:12]
    report["result_id"] = f"gx-{key}-{digest}"
    return report


def _reject(cfg: PipelineConfig, key: str, fetched: FetchedBatch, results: list[FileResult],
            report: dict[str, Any]) -> NoReturn:
    summary = summarize(results)
    folder = _quarantine(cfg, key, fetched["files"], report)
    log.error("%s; quarantined in %s", summary, folder)
    send_alert(Alert(title="Market data batch rejected", severity="critical", kind="validation",
                     facts={"interval": key, "files": len(fetched["files"]), "result": report["result_id"]},
                     lines=[summary[:1500], f"quarantine: {folder}"]))
    raise BatchRejected(f"{summary} (batch quarantined in {folder}; nothing merged)", results, folder)


def staged_bars(validated: ValidatedBatch) -> pd.DataFrame:
    """The gated bars of a batch, from wherever the gate staged them."""
    import io

    return pd.read_parquet(io.BytesIO(read_bytes(validated["staged"])))


def version_dataset(validated: ValidatedBatch, run_id: str = "manual", cfg: PipelineConfig | None = None) -> VersionRecord:
    """Merge the gated bars into the head version and publish the result (DVC add + push, version log, new head),
    one writer at a time on every host. Returns the lineage record (md5 is the data version)."""
    from market_mlops.data.dataset import merge_bars
    from market_mlops.data.versioning import DataVersion, publish_version

    cfg = cfg or get_config()
    bars = staged_bars(validated)
    changed = validated.get("rows_changed", {})

    def record_for(version: DataVersion, pushed: int, added: dict[str, int]) -> dict[str, Any]:
        return {
            "md5": version.md5, "files": version.files, "size": version.size, "objects_pushed": pushed,
            "interval_start": validated["interval_start"], "interval_end": validated["interval_end"],
            "sessions": validated["sessions"], "rows_added": added, "rows_changed": changed,
            "rows_unchanged": validated["rows"] - sum(added.values()) - sum(changed.values()),
            "gx_result_id": validated["result_id"], "run_id": run_id, "remote": cfg.dvc_remote_url,
            "splits": validated.get("splits", []),
        }

    record, added = publish_version(cfg, lambda dataset: merge_bars(dataset, bars), record_for, run_id)
    log.info("merged %d rows: %d new, %d changed, per symbol %s; data version %s", len(bars), sum(added.values()),
             sum(changed.values()), added, record["md5"])
    return cast(VersionRecord, record)
