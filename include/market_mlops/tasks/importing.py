"""`market-mlops import`: a vendor history into the versioned dataset through the ingestion DAG's own steps.

Files (CSV or Parquet; a file, a folder or an s3:// key or prefix) become one batch whose interval spans their bars;
the batch goes through the same gate (`validate_batch`: normalisation, Great Expectations, coverage per symbol from
its listing), merge and DVC version as a scheduled run. Importing the same files again changes no byte of the data.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from market_mlops.config import PipelineConfig, get_config
from market_mlops.contracts import FetchedBatch, RawFileRef, VersionRecord
from market_mlops.data import calendar
from market_mlops.data.object_store import read_bytes
from market_mlops.data.sources import BadFile, RawFile, list_files, read_raw_file
from market_mlops.tasks.ingestion import (
    BatchRejected,
    staged_bars,
    validate_batch,
    validation_report_uri,
    version_dataset,
    with_sessions,
)

log = logging.getLogger(__name__)


class NothingToImport(ValueError):
    """No supported file at the given locations."""


class AmbiguousFiles(ValueError):
    """Two files of one import would be reported under the same name."""


@dataclass(frozen=True)
class PairSummary:
    symbol: str
    timeframe: str
    first_bar: str
    last_bar: str
    rows: int
    sessions_missing: int


@dataclass(frozen=True)
class ImportResult:
    version: VersionRecord
    pairs: list[PairSummary]
    rows_added: dict[str, int]
    warnings: list[str]
    rows_changed: dict[str, int]
    dropped: list[str] = field(default_factory=list)  # bars outside their calendar's sessions (--drop-off-session)
    ended: list[str] = field(default_factory=list)  # series whose files end before the batch's last session
    refused: list[str] = field(default_factory=list)  # files left out by --partial, with why and where they are kept

    @property
    def changed_data(self) -> bool:
        """Whether the import added or restated a bar (importing the same files again does neither)."""
        return sum(self.rows_added.values()) + sum(self.rows_changed.values()) > 0

    def table(self) -> str:
        """What the command prints: one line per (symbol, timeframe), the warnings, the data version."""
        head = f"{'symbol':<10} {'tf':<4} {'first bar':<17} {'last bar':<17} {'rows':>8} {'sessions missing':>17}"
        lines = [head, "-" * len(head)]
        lines += [f"{p.symbol:<10} {p.timeframe:<4} {p.first_bar:<17} {p.last_bar:<17} {p.rows:>8} {p.sessions_missing:>17}"
                  for p in self.pairs]
        lines += [f"ended: {line}" for line in self.ended]
        lines.append("rows new to the dataset: " + ", ".join(f"{s} {n}" for s, n in sorted(self.rows_added.items())))
        if self.rows_changed:
            lines.append("stored rows restated: " + ", ".join(f"{s} {n}" for s, n in sorted(self.rows_changed.items())))
        lines += [f"warning: {w}" for w in self.warnings]
        if self.refused:
            lines.append(f"refused {len(self.refused)} file(s) (--partial: the files above were imported without them):")
            lines += [f"  {r}" for r in self.refused]
        if self.dropped:
            lines.append(f"dropped {len(self.dropped)} bar(s) outside their calendar's sessions (--drop-off-session):")
            lines += [f"  {d}" for d in self.dropped[:20]] + ([f"  ... and {len(self.dropped) - 20} more"]
                                                              if len(self.dropped) > 20 else [])
        if self.version.get("unchanged"):
            lines.append(f"data version {self.version['md5']} unchanged: the dataset already held every bar of these "
                         "files (no version logged)")
        else:
            lines.append(f"data version {self.version['md5']} ({self.version['files']} files, pushed "
                         f"{self.version['objects_pushed']} objects to {self.version['remote']})")
        return "\n".join(lines)


def collect_files(locations: list[str], symbol: str | None, timeframe: str | None) -> list[RawFileRef]:
    refs: list[RawFileRef] = []
    for location in locations:
        root = str(Path(location).expanduser()) if "://" not in location else location
        for uri in list_files(location):
            inside = uri[len(root):].lstrip("/") if uri.startswith(root.rstrip("/") + "/") else ""
            ref: RawFileRef = {"uri": uri, "name": inside or uri.rsplit("/", 1)[-1]}  # unique within a location
            if symbol:
                ref["symbol"] = symbol
            if timeframe:
                ref["timeframe"] = timeframe
            refs.append(ref)
    if not refs:
        raise NothingToImport(f"no CSV or Parquet file at {', '.join(locations)}")
    names = [r["name"] for r in refs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise AmbiguousFiles(f"two files are both named {twice[0]!r} (from different locations): import them one "
                              "location at a time")
    return refs


def import_batch(files: list[RawFileRef], cfg: PipelineConfig) -> tuple[FetchedBatch, dict[str, pd.DataFrame]]:
    """The batch the files make: their symbols and timeframes, an interval from the session of the first bar to the
    close of the last one on each symbol's calendar; and the files as read (by URI), for the gate not to read them
    again. A file that cannot be read is left to the gate to report."""
    starts, ends, symbols, timeframes = [], [], set(), set()
    read: dict[str, pd.DataFrame] = {}
    for ref in files:
        try:
            frame = read_raw_file(RawFile(uri=ref["uri"], name=ref["name"]), ref.get("symbol"), ref.get("timeframe"), cfg.bar_minutes,
                                  cfg.source.price_basis)
        except BadFile:
            continue
        frame = read[ref["uri"]] = with_sessions(frame, cfg)
        for (symbol, tf), part in frame[frame["on_session"]].groupby(["symbol", "timeframe"]):
            cal = cfg.universe.calendar_of(str(symbol))
            starts.append(calendar.session(cal, min(part["session"])).interval_start)
            ends.append(calendar.session(cal, max(part["session"])).close)
            symbols.add(str(symbol))
            timeframes.add(str(tf))
    if not starts:  # nothing readable: the gate reports each file
        now = pd.Timestamp.now(tz="UTC")
        starts, ends = [now], [now]
    start, end = min(starts).to_pydatetime(), max(ends).to_pydatetime()
    allowed = cfg.universe.data_symbols
    return {
        "interval_start": start.isoformat(), "interval_end": end.isoformat(),
        "sessions": [d.isoformat() for d in calendar.sessions_in_interval(cfg.universe.schedule_calendar, start, end)],
        "symbols": sorted(s for s in symbols if s in allowed) or list(allowed),
        "timeframes": sorted(t for t in timeframes if t in cfg.universe.timeframes) or list(cfg.universe.timeframes),
        "source": "import", "files": files,
    }, read


def import_files(locations: list[str], symbol: str | None = None, timeframe: str | None = None,
                 run_id: str | None = None, cfg: PipelineConfig | None = None, allow_restatement: bool = False,
                 accept_gaps: bool = False, drop_off_session: bool | None = None, partial: bool = False) -> ImportResult:
    """Gate, merge and version vendor files; raises `BatchRejected` (one line, batch quarantined) on bad data.
    `allow_restatement` / `accept_gaps`: as the ingestion DAG's params (stored bars may change / a jump at the
    boundary with the stored bars is a warning). `partial`: files that fail their own checks are left out (they are
    in the quarantined batch, listed in the result) and the rest is gated again and imported; a batch-wide failure
    (coverage, stored history) still refuses everything."""
    cfg = cfg or get_config()
    if timeframe is not None:
        cfg.spec(timeframe)  # an unknown --timeframe is a ConfigError naming the configured ones
    files = collect_files(locations, symbol, timeframe)
    run_id = run_id or f"import-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    try:
        return _import(files, run_id, cfg, allow_restatement, accept_gaps, drop_off_session)
    except BatchRejected as error:
        failed = {r.file: r for r in error.results if not r.success and not r.file.startswith("<")}
        keep = [f for f in files if f["name"] not in failed]
        if not partial or not failed or not keep:
            raise
        folder = error.folder
    from market_mlops.data.validation import summarize

    result = _import(keep, f"{run_id}-partial", cfg, allow_restatement, accept_gaps, drop_off_session)
    refused = [f"{summarize([r]).removeprefix('validation failed for 1 of 1 file(s): ')} (kept in {folder})"
               for r in failed.values()]
    return dataclasses.replace(result, refused=refused)


def _import(files: list[RawFileRef], run_id: str, cfg: PipelineConfig, allow_restatement: bool, accept_gaps: bool,
            drop_off_session: bool | None) -> ImportResult:
    fetched, read = import_batch(files, cfg)
    validated = validate_batch(fetched, run_id=run_id, cfg=cfg, allow_restatement=allow_restatement,
                               accept_gaps=accept_gaps, read=read, drop_off_session=drop_off_session)
    record = version_dataset(validated, run_id=run_id, cfg=cfg)
    report = json.loads(read_bytes(validation_report_uri(cfg, fetched["interval_start"], fetched["interval_end"])))
    pairs, ended = _pair_summaries(staged_bars(validated), fetched, cfg)
    for line in ended:
        log.info("import: %s", line)
    return ImportResult(record, pairs, record["rows_added"], list(report["warnings"]),
                        validated.get("rows_changed", {}), validated.get("dropped", []), ended=ended)


def _pair_summaries(staged: pd.DataFrame, fetched: FetchedBatch,
                    cfg: PipelineConfig) -> tuple[list[PairSummary], list[str]]:
    """Each pair's line of the import's table, and the series whose files end before the batch's last session."""
    from market_mlops.data.coverage import coverage_table, ended_series, last_sessions
    from market_mlops.data.dataset import first_bar
    from market_mlops.data.versioning import head_dataset

    bars = with_sessions(staged, cfg)
    dataset = head_dataset(cfg)  # once: every pair reads the same head
    start, end = dt.datetime.fromisoformat(fetched["interval_start"]), dt.datetime.fromisoformat(fetched["interval_end"])
    out = []
    ends = last_sessions(bars)
    for (symbol, tf), part in bars.groupby(["symbol", "timeframe"], sort=True):
        pair = (str(symbol), str(tf))
        coverage = coverage_table(part, {pair[0]: cfg.universe.calendar_of(pair[0])}, cfg.bar_minutes,
                                  start, end, [pair], {pair: first_bar(dataset, *pair)}, ends)
        out.append(PairSummary(pair[0], pair[1], f"{part['ts'].min():%Y-%m-%d %H:%M}", f"{part['ts'].max():%Y-%m-%d %H:%M}",
                               len(part), int(coverage["session_missing"].sum())))
    calendars = {p.symbol: cfg.universe.calendar_of(p.symbol) for p in out}
    return out, ended_series(ends, calendars, end)

