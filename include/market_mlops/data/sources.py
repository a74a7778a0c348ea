"""Where bars come from, behind one small interface, and how raw files become canonical bars.

A source turns a data interval into raw batch files (`RawFile`), never modifying anything it reads:
- `LandingSource`: CSV/Parquet files users drop under `<landing>/<YYYY-MM-DD>/` (local folder or s3://bucket/prefix),
  one folder per session. Column spellings are forgiving (Date/Datetime/timestamp, Open/High/Low/Close/Adj Close/
  Volume, any case). Symbol and timeframe come from columns or from the file name `SYMBOL_TIMEFRAME.ext`.
- `SyntheticSource`: the generator (the demo's source), staged as Parquet files written once.
`read_raw_file` normalizes one file into the canonical schema or raises `BadFile` naming the file and the check.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from market_mlops.data.bars import COLUMNS, DTYPES, PRICE_COLUMNS
from market_mlops.data.object_store import read_bytes

if TYPE_CHECKING:
    from market_mlops.config import PipelineConfig
    from market_mlops.data.synthetic import GeneratorSpec

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".pq")
_ALIASES = {
    "ts": {"ts", "timestamp", "time", "date", "datetime", "date_time", "open_time", "bar_time"},
    "open": {"open", "o"},
    "high": {"high", "h"},
    "low": {"low", "l"},
    "close": {"close", "c", "last"},
    "adj_close": {"adj close", "adj_close", "adjclose", "adjusted_close", "adjusted close"},
    "volume": {"volume", "vol", "v"},
    "symbol": {"symbol", "ticker", "instrument"},
    "timeframe": {"timeframe", "tf", "interval"},
}
_NAME_PATTERN = re.compile(r"^(?P<symbol>[A-Za-z0-9.\-]+?)[_-](?P<timeframe>[A-Za-z0-9]+)$")
_TICKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,14}$")


class BadFile(ValueError):
    """A raw file cannot be turned into bars; `check` names what failed."""

    hint = ('fix or replace the file named above in the landing folder, then trigger market_data_ingestion '
            'again')

    def __init__(self, file: str, check: str, detail: str) -> None:
        self.file, self.check, self.detail = file, check, detail
        super().__init__(f"{file}: {check}: {detail}")


@dataclass(frozen=True)
class RawFile:
    uri: str  # local path or s3:// URI
    name: str


class Source(Protocol):
    name: str

    def raw_files(self, sessions: list[dt.date], symbols: list[str], timeframes: list[str]) -> list[RawFile]:
        """Raw files holding the bars of `sessions` (never modified by the pipeline)."""
        ...


# Reading ------------------------------------------------------------------------------------------------------
def _parse(raw: RawFile) -> pd.DataFrame:
    data = read_bytes(raw.uri)
    if not data.strip():
        raise BadFile(raw.name, "file_not_empty", "the file is empty")
    suffix = Path(raw.name).suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(io.BytesIO(data))
        text = data.decode("utf-8-sig")
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=True)
    except UnicodeDecodeError as exc:
        raise BadFile(raw.name, "file_is_utf8", f"not UTF-8 text (byte {exc.start})") from None
    except Exception as exc:  # truncated parquet, malformed CSV
        raise BadFile(raw.name, "file_readable", f"{exc.__class__.__name__}: {str(exc)[:160]}") from None


def _rename_columns(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    mapping: dict[str, str] = {}
    for col in frame.columns:
        key = str(col).strip().lower()
        for canonical, spellings in _ALIASES.items():
            if key in spellings:
                if canonical in mapping.values():
                    raise BadFile(name, "columns_unique", f"two columns map to {canonical!r} (duplicate header?)")
                mapping[col] = canonical
    unknown = [str(c) for c in frame.columns if c not in mapping]
    if unknown:
        raise BadFile(name, "columns_known", f"unknown column(s) {unknown[:5]}")
    return frame.rename(columns=mapping)


def _to_utc(values: pd.Series, name: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values
    else:
        text = values.astype("string")
        has_offset = text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True, na=False)
        if has_offset.any() and not has_offset[text.notna()].all():
            naive = text[text.notna() & ~has_offset]
            raise BadFile(name, "ts_timezone_consistent", f"naive and timezone-aware timestamps are mixed: "
                          f"{naive.iloc[0]!r} on {_row(naive.index[0])} has no offset, {text[has_offset].iloc[0]!r} has")
        try:
            ts = pd.to_datetime(text, utc=bool(has_offset.any()), format="mixed")
        except (ValueError, TypeError) as exc:
            bad = text[text.notna() & pd.to_datetime(text, utc=True, format="mixed", errors="coerce").isna()]
            value = f"{bad.iloc[0]!r} on {_row(bad.index[0])}" if len(bad) else str(exc)[:120]
            raise BadFile(name, "ts_parseable", f"timestamps do not parse: {value}"
                          f"{f' (+{len(bad) - 1} more)' if len(bad) > 1 else ''}") from None
    if ts.dt.tz is None:
        ts = ts.dt.tz_localize("UTC")  # naive timestamps are taken as UTC (documented in the README)
    return ts.dt.tz_convert("UTC").astype(DTYPES["ts"])


def _row(index: object) -> str:
    """A row of a file as a user finds it in an editor: the header is line 1."""
    return f"line {int(index) + 2}" if isinstance(index, (int, np.integer)) else f"row {index}"


def read_raw_file(raw: RawFile, default_symbol: str | None = None, default_timeframe: str | None = None,
                  timeframes: Mapping[str, int] | None = None, price_basis: str | None = None) -> pd.DataFrame:
    """Canonical bars of one raw file, plus check columns the gate reads (`ts_step_ok`, `abs_log_return`,
    `split_ratio`: the ratio of a split effective at that bar, else 1).

    Symbol: a column, else the name `SYMBOL_TF.csv`, else `default_symbol` (an import's --symbol), else the name
    `SYMBOL.csv`. Timeframe: a column, else the name, else `default_timeframe`, else the bar spacing.
    `timeframes`: {name: bar minutes} a name or a spacing may match; `price_basis`: adjusted or raw (default: the
    configured ones)."""
    if timeframes is None or price_basis is None:
        from market_mlops.config import get_config

        timeframes = get_config().bar_minutes if timeframes is None else timeframes
        price_basis = price_basis or get_config().source.price_basis
    frame = _rename_columns(_parse(raw), raw.name)
    stem = Path(raw.name).stem
    match = _NAME_PATTERN.match(stem)
    if match and match.group("timeframe").lower() not in timeframes:
        match = None
    if "symbol" not in frame.columns:
        symbol = match.group("symbol").upper() if match else default_symbol
        symbol = symbol or (stem.upper() if _TICKER_NAME.match(stem) else None)
        if not symbol:
            raise BadFile(raw.name, "symbol_known", f"no symbol column and the name {stem!r} is neither SYMBOL nor "
                          "SYMBOL_TIMEFRAME: rename the file or pass --symbol")
        frame["symbol"] = symbol
    if "timeframe" not in frame.columns and "ts" in frame.columns:
        tf = match.group("timeframe").lower() if match else default_timeframe
        frame["timeframe"] = tf or infer_timeframe(raw.name, frame["ts"], timeframes)
    adj_close = None
    if "close" not in frame.columns and "adj_close" in frame.columns:
        frame["close"] = frame["adj_close"]
    elif "adj_close" in frame.columns:
        adj_close = pd.to_numeric(frame["adj_close"], errors="coerce").astype("float64")
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise BadFile(raw.name, "columns_present", f"missing column(s) {missing}")
    if frame.empty:
        raise BadFile(raw.name, "file_not_empty", "the file has a header but no rows")

    out = pd.DataFrame({"symbol": frame["symbol"].astype("string").str.strip().str.upper(),
                        "timeframe": frame["timeframe"].astype("string").str.strip().str.lower()})
    out["ts"] = _to_utc(frame["ts"], raw.name)
    for col in [*PRICE_COLUMNS, "volume"]:
        numeric = pd.to_numeric(frame[col], errors="coerce")
        bad = numeric.isna() & frame[col].notna() & (frame[col].astype("string").str.strip() != "")
        if bad.any():
            first = bad.idxmax()
            raise BadFile(raw.name, "numbers_numeric", f"column {col!r} holds text: {frame.at[first, col]!r} on "
                          f"{_row(first)} (ts {frame.at[first, 'ts']}){f' (+{int(bad.sum()) - 1} more)' if bad.sum() > 1 else ''}")
        out[col] = numeric.astype("float64")
    out = _on_price_basis(out.astype(DTYPES), adj_close, price_basis)

    # Check columns, computed in the file's own row order (unsorted input must fail, not be silently fixed).
    group = out.groupby(["symbol", "timeframe"], sort=False)
    step = group["ts"].diff()
    out["ts_step_ok"] = step.isna() | (step > pd.Timedelta(0))
    out["split_source"] = ""
    out = with_returns(out, price_basis)
    out["ts_epoch_s"] = (out["ts"].astype("int64") // 1_000_000_000).astype("int64")
    out["source_file"] = raw.name
    # The file's timeframe (its most common one): a row of another timeframe is refused by a row check, which holds
    # when many files are validated in one GX run.
    known = out["timeframe"].dropna()
    out["file_timeframe"] = known.mode().iloc[0] if len(known) else None
    return out


def with_returns(bars: pd.DataFrame, price_basis: str) -> pd.DataFrame:
    """The gate's `abs_log_return` column, in the file's own row order: each bar's close against the one before
    (its own open for a series' first bar); on the raw basis a split's move is a corporate action, not a market move."""
    prev_close = bars.groupby(["symbol", "timeframe"], sort=False)["close"].shift(1)
    log_ret = np.log(bars["close"] / prev_close.fillna(bars["open"]))
    if price_basis == "raw":
        log_ret = log_ret + np.log(bars["split_ratio"])
    bars["abs_log_return"] = log_ret.abs().replace([np.inf, -np.inf], np.nan).fillna(0.0)
    return bars


def _on_price_basis(bars: pd.DataFrame, adj_close: pd.Series | None, price_basis: str) -> pd.DataFrame:
    """Find the splits of each series (`split_ratio` column) and, on the adjusted basis, scale prices and volumes
    to the latest shares. A series the gate will reject (unsorted, missing prices) is left as read."""
    from market_mlops.data.corporate_actions import adjust_series, find_splits

    bars["split_ratio"] = 1.0
    for _, index in bars.groupby(["symbol", "timeframe"], sort=False).groups.items():
        part = bars.loc[index]
        prices = part[["open", "close", "volume"]].to_numpy()
        if not part["ts"].is_monotonic_increasing or not np.isfinite(prices).all() or (prices[:, :2] <= 0).any():
            continue
        adj = adj_close.loc[index].to_numpy() if adj_close is not None else None
        if adj is not None and not (np.isfinite(adj).all() and (adj > 0).all()):
            adj = None  # a gap in Adj Close: fall back to the splits the prices show
        splits = find_splits(part["ts"], part["open"].to_numpy(), part["close"].to_numpy(), part["volume"].to_numpy(), adj)
        for split in splits:
            bars.loc[part.index[part["ts"] == split.ts], "split_ratio"] = split.ratio
        if price_basis == "adjusted" and (splits or adj is not None):
            bars.loc[index, PRICE_COLUMNS + ["volume"]] = adjust_series(part, splits, adj)[PRICE_COLUMNS + ["volume"]]
    return bars


def infer_timeframe(name: str, stamps: pd.Series, timeframes: Mapping[str, int]) -> str:
    """The configured timeframe whose bar length matches the file's typical bar spacing (the median gap, so
    nights and weekends do not count); refused with one line when none or several match."""
    ts = pd.to_datetime(stamps.astype("string"), utc=True, format="mixed", errors="coerce").dropna().drop_duplicates()
    gaps = ts.sort_values().diff().dropna()
    if gaps.empty:
        raise BadFile(name, "timeframe_known", "one bar cannot tell its timeframe: name the file SYMBOL_TF.csv "
                      f"(TF one of {sorted(timeframes)}) or pass --timeframe")
    minutes = gaps.median().total_seconds() / 60
    daily = [tf for tf, length in timeframes.items() if length >= 1440]
    found = daily if 20 * 60 <= minutes <= 4 * 1440 else [tf for tf, length in timeframes.items() if length == minutes]
    if len(found) != 1:
        raise BadFile(name, "timeframe_known", f"bars {minutes:g} minutes apart match "
                      f"{'no' if not found else 'more than one'} configured timeframe ({', '.join(f'{tf}={m}m' for tf, m in sorted(timeframes.items()))}): "
                      "name the file SYMBOL_TF.csv or pass --timeframe")
    return found[0]


# Sources ------------------------------------------------------------------------------------------------------
class LandingSource:
    """Files users drop under `<landing>/<session date>/`; read-only."""

    name = "landing"

    def __init__(self, landing_uri: str, known_timeframes: Collection[str]) -> None:
        self.landing_uri = landing_uri.rstrip("/")
        self.known_timeframes = set(known_timeframes)

    def raw_files(self, sessions: list[dt.date], symbols: list[str], timeframes: list[str]) -> list[RawFile]:
        files = []
        for session in sessions:
            prefix = f"{self.landing_uri}/{session.isoformat()}"
            if prefix.startswith("s3://"):
                from market_mlops.data.object_store import list_s3

                uris = list_s3(prefix + "/")
            else:
                folder = Path(prefix)
                uris = [str(p) for p in sorted(folder.iterdir()) if p.is_file()] if folder.is_dir() else []
            files += [RawFile(uri=u, name=f"{session.isoformat()}/{u.rsplit('/', 1)[-1]}") for u in sorted(uris)]
        return [f for f in files if f.name.lower().endswith(SUPPORTED_SUFFIXES)
                and named_for(f.name, symbols, timeframes, self.known_timeframes)]


def list_files(location: str) -> list[str]:
    """Supported files at a location: a file, a folder (recursively) or an s3:// key or prefix."""
    if location.startswith("s3://"):
        from market_mlops.data.object_store import list_s3

        uris = [location] if location.lower().endswith(SUPPORTED_SUFFIXES) else list_s3(location.rstrip("/") + "/")
    else:
        path = Path(location).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"{location}: no such file or folder")
        uris = [str(path)] if path.is_file() else [str(p) for p in sorted(path.rglob("*")) if p.is_file()]
    return sorted(u for u in uris if u.lower().endswith(SUPPORTED_SUFFIXES))


def symbol_in_name(name: str, known_timeframes: Collection[str]) -> str | None:
    """The symbol a file's name gives (`SPY_h1.csv`, `AAPL.csv`), or None (`bars.csv`)."""
    stem = Path(name).stem
    match = _NAME_PATTERN.match(stem)
    if match and match.group("timeframe").lower() in known_timeframes:
        return match.group("symbol").upper()
    return stem if stem.isupper() and _TICKER_NAME.match(stem) else None


def named_for(name: str, symbols: list[str], timeframes: list[str], known_timeframes: Collection[str]) -> bool:
    """Whether a file's name leaves it in a run narrowed to `symbols` and `timeframes`. A name that names neither
    (`bars.csv` with a symbol column) stays: the gate checks its rows."""
    symbol = symbol_in_name(name, known_timeframes)
    if symbol is None:
        return True
    match = _NAME_PATTERN.match(Path(name).stem)
    named_tf = match.group("timeframe").lower() if match else None
    return symbol in symbols and (named_tf not in known_timeframes or named_tf in timeframes)


class SyntheticSource:
    """The generator, staged once per (sessions, symbol, timeframe) as raw Parquet (the same bytes on every rerun)."""

    name = "synthetic"

    def __init__(self, spec: GeneratorSpec, raw_root: Path) -> None:
        self.spec = spec
        self.raw_root = raw_root

    def raw_files(self, sessions: list[dt.date], symbols: list[str], timeframes: list[str]) -> list[RawFile]:
        from market_mlops.data.storage import write_parquet_atomic
        from market_mlops.data.synthetic import generate_bars

        if not sessions:
            return []
        first, last = min(sessions), max(sessions)
        label = first.isoformat() if first == last else f"{first.isoformat()}_{last.isoformat()}"
        folder = self.raw_root / "synthetic" / label
        files = []
        for tf in timeframes:
            bars = None
            for symbol in symbols:
                path = folder / f"{symbol}_{tf}.parquet"
                if not path.exists():  # raw data is written once and never overwritten
                    if bars is None:
                        bars = generate_bars(self.spec, symbols, tf, first, last)
                    write_parquet_atomic(bars[bars["symbol"] == symbol].reset_index(drop=True), path)
                files.append(RawFile(uri=str(path), name=f"{label}/{path.name}"))
        return files


def make_source(kind: str, cfg: PipelineConfig) -> Source:
    if kind == "landing":
        return LandingSource(cfg.landing_uri, cfg.timeframes)
    if kind == "synthetic":
        from market_mlops.data.synthetic import spec_from_config

        return SyntheticSource(spec_from_config(cfg), cfg.data_root / "raw")
    raise ValueError(f"unknown source {kind!r}: allowed are 'landing' and 'synthetic'")
