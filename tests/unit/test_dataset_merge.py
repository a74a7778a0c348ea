"""Upserts into the stores on disk: any order, any concurrency, same bytes.

A backfill runs several runs at once (its max_active_runs is independent of the DAG's), and their upserts land in
the same yearly dataset partition or the forecasts table. The CI of an earlier submission caught two unlocked
merges each dropping the other's rows; these tests reproduce that with processes started at the same instant.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from market_mlops.config import load_config
from market_mlops.data.dataset import load_bars, merge_bars
from market_mlops.data.synthetic import GeneratorSpec, generate_bars
from market_mlops.monitoring.forecasts import FORECAST_COLUMNS, load_forecasts, upsert_forecasts
from tests.files import parquet_digests

SESSIONS = [dt.date(2024, 7, d) for d in (1, 2, 3, 5, 8, 9, 10, 11)]


def _session_bars(day: dt.date) -> pd.DataFrame:
    return generate_bars(GeneratorSpec(seed=7), ["SPY", "AAPL"], "d1", day, day)


def _day_forecasts(day: dt.date) -> pd.DataFrame:
    ts = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=13, minutes=30)
    return pd.DataFrame({"symbol": ["SPY", "SPY"], "timeframe": "d1", "ts": [ts, ts], "horizon": 5,
                         "model_name": "SPY-d1-direction", "model_version": ["1", "2"], "p_bearish": 0.2,
                         "p_neutral": 0.3, "p_bullish": 0.5, "predicted": "bullish", "role": "champion"})[FORECAST_COLUMNS]


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


def _store_at(home: Path):
    return load_config(environ={"MLOPS_HOME": str(home)})


def _forecasts_into(home: Path, frame: pd.DataFrame) -> None:
    upsert_forecasts(frame, _store_at(home))


def test_concurrent_forecast_upserts_lose_no_rows(tmp_path):
    """Forecasts live in the SQL store: processes writing at the same instant (and a retry of one of them) leave
    exactly the rows one process writing in turn leaves."""
    frames = [_day_forecasts(day) for day in SESSIONS]
    sequential, concurrent = tmp_path / "sequential", tmp_path / "concurrent"
    _one_by_one(_forecasts_into, sequential, [_day_forecasts(dt.date(2024, 6, 28)), *frames])
    _forecasts_into(concurrent, _day_forecasts(dt.date(2024, 6, 28)))
    _all_at_once(_forecasts_into, concurrent, frames[::-1])
    _forecasts_into(concurrent, frames[3].assign(p_bullish=0.6))  # a rerun replaces its rows in place

    stored = load_forecasts("SPY", "d1", _store_at(concurrent))
    alone = load_forecasts("SPY", "d1", _store_at(sequential))
    assert len(stored) == 2 * (len(SESSIONS) + 1)
    changed = stored["ts"] == frames[3]["ts"].iloc[0]
    assert stored.loc[changed, "p_bullish"].tolist() == [0.6, 0.6]
    assert stored[~changed].reset_index(drop=True).equals(alone[~changed.to_numpy()].reset_index(drop=True))


def test_a_window_reads_only_its_partitions_and_returns_what_the_whole_history_holds(tmp_path):
    """load_bars skips the yearly (d1) and monthly (h1) partitions outside [since, until): same rows as filtering the
    full history, at partition edges too, and a partition it need not read is not opened (a corrupt one is fine)."""
    root = tmp_path / "dataset"
    spec = GeneratorSpec(seed=3)
    for tf, start in (("d1", dt.date(2021, 11, 1)), ("h1", dt.date(2024, 10, 20))):
        merge_bars(root, generate_bars(spec, ["SPY", "AAPL"], tf, start, dt.date(2025, 2, 14)),
                   {"d1": "year", "h1": "month"})
    utc = dt.UTC
    for tf, since, until in (("d1", dt.datetime(2023, 1, 1, tzinfo=utc), dt.datetime(2024, 1, 1, tzinfo=utc)),
                             ("d1", dt.datetime(2022, 12, 30, tzinfo=utc), dt.datetime(2024, 3, 5, 15, tzinfo=utc)),
                             ("h1", dt.datetime(2024, 11, 30, 20, tzinfo=utc), dt.datetime(2025, 1, 1, tzinfo=utc)),
                             ("h1", dt.datetime(2025, 1, 31, 23, tzinfo=utc), None),
                             ("h1", None, dt.datetime(2024, 11, 1, tzinfo=utc))):
        whole = load_bars(root, tf, ["SPY"])
        expected = whole[(whole["ts"] >= pd.Timestamp(since or dt.datetime.min.replace(tzinfo=utc)))
                         & (whole["ts"] < pd.Timestamp(until or dt.datetime.max.replace(tzinfo=utc)))]
        window = load_bars(root, tf, ["SPY"], until=until, since=since)
        assert len(window) > 0
        pd.testing.assert_frame_equal(window, expected.reset_index(drop=True))
    (root / "symbol=SPY" / "timeframe=d1" / "2021.parquet").write_bytes(b"not parquet")
    assert load_bars(root, "d1", ["SPY"], since=dt.datetime(2022, 1, 1, tzinfo=utc))["ts"].min().year == 2022
