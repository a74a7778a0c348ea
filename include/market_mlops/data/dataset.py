"""The versioned dataset: canonical bars in Parquet partitions per symbol, timeframe and period.

Layout: `dataset/symbol=SPY/timeframe=d1/2024.parquet` (d1, h4: one file a year) or `.../2024-11.parquet` (h1, m15:
one file a month), so a new session rewrites one small partition and DVC pushes only that file and the manifest.
A merge is an upsert on (symbol, timeframe, ts): rerunning a session changes no byte, and merging sessions in any
order gives the same partitions. Merges are read-modify-write, so they hold the dataset lock: a backfill runs several
sessions at once, and two unlocked merges into one yearly partition would each drop the other's rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from market_mlops.data.bars import COLUMNS, with_canonical_dtypes
from market_mlops.data.storage import directory_lock, remove_stale_temp_files, write_parquet_atomic


def configured_partitions() -> dict[str, str]:
    """{timeframe: "year" | "month"} from the timeframe specs."""
    from market_mlops.config import get_config

    return {name: spec.partition for name, spec in get_config().timeframes.items()}


def _periods(batch: pd.DataFrame, partitions: Mapping[str, str]) -> pd.Series:
    yearly = batch["timeframe"].isin([tf for tf, period in partitions.items() if period == "year"])
    year = batch["ts"].dt.strftime("%Y")
    return year.where(yearly, batch["ts"].dt.strftime("%Y-%m"))


def partition_path(root: Path, symbol: str, timeframe: str, period: str) -> Path:
    return root / f"symbol={symbol}" / f"timeframe={timeframe}" / f"{period}.parquet"


def merge_bars(root: Path, batch: pd.DataFrame, partitions: Mapping[str, str] | None = None) -> dict[str, int]:
    """Upsert `batch` into the partitions it touches; returns rows newly added per symbol.

    `partitions`: {timeframe: "year" | "month"}, by default from the timeframe specs."""
    batch = with_canonical_dtypes(batch[COLUMNS])
    with directory_lock(root):
        remove_stale_temp_files(root)  # safe under the lock: no other writer has a temp file open
        return _upsert(root, batch, partitions or configured_partitions())


def _upsert(root: Path, batch: pd.DataFrame, partitions: Mapping[str, str]) -> dict[str, int]:
    """Each touched partition read, merged and written (when its bytes change) on its own: two at a time, since
    Parquet reads and writes release the GIL (a fleet's first import writes thousands of partitions)."""
    from concurrent.futures import ThreadPoolExecutor

    added: dict[str, int] = {}
    if batch.empty:
        return added
    groups = list(batch.groupby(["symbol", "timeframe", _periods(batch, partitions)], sort=True))

    def merge_partition(key: tuple[str, str, str], part: pd.DataFrame) -> tuple[str, int]:
        symbol, timeframe, period = key
        path = partition_path(root, symbol, timeframe, period)
        existing = pd.read_parquet(path) if path.exists() else None
        if existing is not None:
            merged = pd.concat([existing, part], ignore_index=True)
            merged = merged.drop_duplicates(subset=["symbol", "timeframe", "ts"], keep="last")
            new_rows = len(merged) - len(existing)
        else:
            merged, new_rows = part, len(part)
        merged = with_canonical_dtypes(merged)
        if existing is None or not merged.equals(with_canonical_dtypes(existing)):
            write_parquet_atomic(merged, path)
        return symbol, int(new_rows)

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="merge") as pool:
        for symbol, new_rows in pool.map(lambda group: merge_partition(*group), groups):
            added[symbol] = added.get(symbol, 0) + new_rows
    return added


def first_bar(root: Path, symbol: str, timeframe: str) -> pd.Timestamp | None:
    """The first stored bar of a pair (its listing, as far as the dataset knows); reads one partition."""
    files = sorted((root / f"symbol={symbol}" / f"timeframe={timeframe}").glob("*.parquet")) if root.exists() else []
    if not files:
        return None
    return pd.Timestamp(pd.read_parquet(files[0], columns=["ts"])["ts"].min())


def _period_overlaps(period: str, since: pd.Timestamp | None, until: pd.Timestamp | None) -> bool:
    """Whether a partition (`2024` or `2024-11`, UTC: the names `_periods` gives) can hold bars with
    since <= ts < until: a 15-year daily history is not read to find its last 45 days. A name that is no period
    is always read."""
    try:
        span = pd.Period(period)
    except ValueError:
        return True
    start, end = span.start_time.tz_localize("UTC"), (span + 1).start_time.tz_localize("UTC")
    return (since is None or since < end) and (until is None or until > start)


def load_bars(root: Path, timeframe: str, symbols: list[str] | None = None,
              until: dt.datetime | None = None, since: dt.datetime | None = None) -> pd.DataFrame:
    """Bars of one timeframe with since <= ts < until (UTC), all symbols or the given ones."""
    frames = []
    since_ts = pd.Timestamp(since).tz_convert("UTC") if since is not None else None
    until_ts = pd.Timestamp(until).tz_convert("UTC") if until is not None else None
    if not root.exists():
        symbol_dirs = []
    elif symbols:  # a fleet's dataset holds thousands of symbol folders: only the asked ones are looked at
        symbol_dirs = sorted(d for d in (root / f"symbol={s}" for s in set(symbols)) if d.is_dir())
    else:
        symbol_dirs = sorted(root.glob("symbol=*"))
    for sdir in symbol_dirs:
        for path in sorted((sdir / f"timeframe={timeframe}").glob("*.parquet")):
            if _period_overlaps(path.stem, since_ts, until_ts):
                frames.append(pd.read_parquet(path))
    if not frames:
        from market_mlops.data.bars import empty_bars

        return empty_bars()
    bars = with_canonical_dtypes(pd.concat(frames, ignore_index=True))
    if until_ts is not None:
        bars = bars[bars["ts"] < until_ts]
    if since_ts is not None:
        bars = bars[bars["ts"] >= since_ts]
    return bars.reset_index(drop=True)
