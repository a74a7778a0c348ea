"""Scoring needs full trailing windows: the warmup of each timeframe yields complete features from the first bar."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from market_mlops.config import load_config
from market_mlops.data.synthetic import GeneratorSpec, generate_bars
from market_mlops.model.features import build_features, feature_columns


@pytest.mark.parametrize("timeframe", ["d1", "h4", "h1", "m15"])
def test_warmup_gives_complete_features_from_the_first_scored_bar(timeframe):
    first = dt.date(2025, 10, 1)
    spec = load_config().spec(timeframe)
    bars = generate_bars(GeneratorSpec(), ["SPY"], timeframe, first - dt.timedelta(days=spec.warmup_days), dt.date(2025, 10, 10))
    feats = build_features(bars, spec.bars_per_year, bars)
    window = feats[feats["ts"] >= pd.Timestamp(first, tz="UTC")]
    assert len(window) > 0
    assert window[feature_columns(feats)].notna().all(axis=1).all()


def test_without_a_benchmark_the_cross_asset_features_are_left_out():
    spec = load_config().spec("d1")
    bars = generate_bars(GeneratorSpec(), ["AAA"], "d1", dt.date(2023, 1, 3), dt.date(2025, 10, 10))
    alone = build_features(bars, spec.bars_per_year, None)
    paired = build_features(bars, spec.bars_per_year, bars)
    dropped = set(feature_columns(paired)) - set(feature_columns(alone))
    assert dropped and all(c.startswith(("bench_", "rel_ret")) for c in dropped)
    assert alone[feature_columns(alone)].iloc[300:].notna().all(axis=1).all()  # nothing else goes missing


def test_an_fx_pair_on_the_hour_gets_cross_asset_features_against_a_half_hour_stock_benchmark():
    """EURUSD h1 bars open on the hour around the clock, SPY's at :30 in NYSE hours: the benchmark is read as of
    each bar (an exact-timestamp join left every cross-asset feature empty and the model with no usable row)."""
    spec = load_config().spec("h1")
    start, end = dt.date(2025, 6, 2), dt.date(2025, 10, 10)
    fx = generate_bars(GeneratorSpec(exchange="FX", benchmark=None), ["EURUSD"], "h1", start, end)
    spy = generate_bars(GeneratorSpec(), ["SPY"], "h1", start, end)
    feats = build_features(fx, spec.bars_per_year, spy)
    late = feats[feats["ts"] >= pd.Timestamp(2025, 9, 1, tz="UTC")]
    assert late[[c for c in feature_columns(feats) if c.startswith("bench_")]].notna().all(axis=1).mean() > 0.95
    assert late["bench_ret1"].abs().gt(0).sum() > 100  # SPY's moves reach the FX rows
