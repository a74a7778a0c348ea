"""Merging sessions into the partitioned dataset: any order, any concurrency, same bytes.

A backfill runs several ingestion runs at once, and their merges land in the same yearly partition. The CI of an
earlier submission caught two unlocked merges each dropping the other's rows; this test reproduces that with
processes started at the same instant.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import multiprocessing as mp
from pathlib import Path

import pandas as pd

from market_mlops.dataset import load_bars, merge_bars
from market_mlops.synthetic import GeneratorSpec, generate_bars

SESSIONS = [dt.date(2024, 7, d) for d in (1, 2, 3, 5, 8, 9, 10, 11)]


def _session_bars(day: dt.date) -> pd.DataFrame:
    return generate_bars(GeneratorSpec(seed=7), ["SPY", "AAPL"], "d1", day, day)


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.parquet"))}


def _merge_at_once(root: str, day: dt.date, barrier) -> None:
    bars = _session_bars(day)
    barrier.wait()
    merge_bars(Path(root), bars)


def test_concurrent_merges_lose_no_rows_and_match_a_sequential_merge(tmp_path):
    sequential = tmp_path / "sequential" / "dataset"
    for day in SESSIONS:
        merge_bars(sequential, _session_bars(day))
    expected = load_bars(sequential, "d1")
    assert len(expected) == 2 * len(SESSIONS)

    concurrent = tmp_path / "concurrent" / "dataset"
    merge_bars(concurrent, _session_bars(dt.date(2024, 6, 28)))  # an existing partition, as in a live dataset
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(len(SESSIONS))
    workers = [ctx.Process(target=_merge_at_once, args=(str(concurrent), day, barrier)) for day in reversed(SESSIONS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0] * len(SESSIONS)

    merged = load_bars(concurrent, "d1")
    assert len(merged) == len(expected) + 2  # every session of every worker, plus the existing day
    merge_bars(sequential, _session_bars(dt.date(2024, 6, 28)))
    assert _digests(concurrent) == _digests(sequential)
    assert not list(concurrent.rglob(".tmp-*"))
