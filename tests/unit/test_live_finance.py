"""Finance metrics of live forecasts in the drift history: the score's IC against the realized forward return."""

from __future__ import annotations

import numpy as np
import pandas as pd

from market_mlops.tasks.drift_check import live_finance_metrics


def _bars(n: int = 120, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2025-01-02", periods=n, freq="B", tz="UTC")
    return pd.DataFrame({"ts": ts, "close": 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))})


def _forecasts(bars: pd.DataFrame, score: np.ndarray) -> pd.DataFrame:
    bull = np.clip(0.34 + score / 2, 0.01, 0.98)
    bear = np.clip(0.34 - score / 2, 0.01, 0.98)
    return pd.DataFrame({"ts": bars["ts"], "p_bearish": bear, "p_neutral": 1 - bull - bear, "p_bullish": bull})


def test_a_score_that_knew_the_future_has_a_high_ic_and_its_reverse_a_negative_one():
    bars = _bars()
    forward = (bars["close"].shift(-5) / bars["close"] - 1).fillna(0).to_numpy()
    score = np.clip(forward * 20, -0.6, 0.6)
    knew = live_finance_metrics(_forecasts(bars, score), bars, 5, 252)
    reverse = live_finance_metrics(_forecasts(bars, -score), bars, 5, 252)
    assert knew["ic"] > 0.8 and knew["rank_ic"] > 0.8
    assert reverse["ic"] < -0.8
    assert knew["long_short_return"] > reverse["long_short_return"]
    assert 0 <= knew["turnover"] <= 2


def test_forecasts_whose_horizon_has_not_passed_are_left_out():
    bars = _bars(40)
    metrics = live_finance_metrics(_forecasts(bars, np.linspace(-0.5, 0.5, 40)), bars, 5, 252)
    assert set(metrics) == {"ic", "rank_ic", "long_short_return", "long_short_sharpe", "long_short_max_drawdown",
                            "turnover"}
    assert np.isfinite(metrics["ic"])
