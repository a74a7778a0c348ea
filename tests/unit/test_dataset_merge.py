"""Upserts into the stores on disk: any order, any concurrency, same bytes.

A backfill runs several runs at once (its max_active_runs is independent of the DAG's), and their upserts land in
the same yearly dataset partition or monthly forecast file. The CI of an earlier submission caught two unlocked
merges each dropping the other's rows; these tests reproduce that with processes started at the same instant.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from market_mlops.data.dataset import load_bars, merge_bars
from market_mlops.data.synthetic import GeneratorSpec, generate_bars
from market_mlops.monitoring.forecasts import FORECAST_COLUMNS, upsert_forecasts
from tests.files import parquet_digests

SESSIONS = [dt.date(2024, 7, d) for d in (1, 2, 3, 5, 8, 9, 10, 11)]


def _session_bars(day: dt.date) -> pd.DataFrame:
    return generate_bars(GeneratorSpec(seed=7), ["SPY", "AAPL"], "d1", day, day)


def _day_forecasts(day: dt.date) -> pd.DataFrame:
    ts = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=13, minutes=30)
    return pd.DataFrame({"symbol": ["SPY", "SPY"], "timeframe": "d1", "ts": [ts, ts], "horizon": 5,
                         "model_name": "SPY-d1-direction", "model_version": ["1", "2"], "p_bearish": 0.2,
                         "p_neutral": 0.3, "p_bullish": 0.5, "predicted": "bullish"})[FORECAST_COLUMNS]


def _upsert_at_once(upsert: Callable, root: str, frame: pd.DataFrame, barrier) -> None:
    barrier.wait()
    upsert(Path(root), frame)


def _all_at_once(upsert: Callable, root: Path, frames: list[pd.DataFrame]) -> None:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(len(frames))
    workers = [ctx.Process(target=_upsert_at_once, args=(upsert, str(root), f, barrier)) for f in frames]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0] * len(frames)


def _one_by_one(upsert: Callable, root: Path, frames: list[pd.DataFrame]) -> None:
    for frame in frames:
        upsert(root, frame)


def test_concurrent_dataset_merges_lose_no_rows_and_match_a_sequential_merge(tmp_path):
    existing = _session_bars(dt.date(2024, 6, 28))  # a partition that already holds a day, as in a live dataset
    sessions = [_session_bars(day) for day in SESSIONS]
    sequential, concurrent = tmp_path / "sequential" / "dataset", tmp_path / "concurrent" / "dataset"
    _one_by_one(merge_bars, sequential, [existing, *sessions])
    merge_bars(concurrent, existing)
    _all_at_once(merge_bars, concurrent, sessions[::-1])

    assert len(load_bars(concurrent, "d1")) == 2 * (len(SESSIONS) + 1)  # every session of every worker
    assert parquet_digests(concurrent) == parquet_digests(sequential)
    assert not list(concurrent.rglob(".tmp-*"))


def test_concurrent_forecast_upserts_lose_no_rows(tmp_path):
    frames = [_day_forecasts(day) for day in SESSIONS]
    sequential, concurrent = tmp_path / "sequential" / "forecasts", tmp_path / "concurrent" / "forecasts"
    _one_by_one(upsert_forecasts, sequential, [_day_forecasts(dt.date(2024, 6, 28)), *frames])
    upsert_forecasts(concurrent, _day_forecasts(dt.date(2024, 6, 28)))
    _all_at_once(upsert_forecasts, concurrent, frames[::-1])

    stored = pd.read_parquet(concurrent / "symbol=SPY" / "timeframe=d1" / "2024-07.parquet")
    assert len(stored) == 2 * len(SESSIONS)
    assert parquet_digests(concurrent) == parquet_digests(sequential)
