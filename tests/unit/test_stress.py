"""Stress windows and resampled paths of a champion's book: only windows the forecasts cover are reported, with the
calls' own numbers; the bootstrap's band holds zero for a book without skill (before costs; after them it loses) and excludes it for
one with."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from market_mlops.analysis.stress import book_returns, bootstrap_book, describe_bootstrap, stress_rows

WINDOWS = {"2008-09..2009-03": (dt.date(2008, 9, 1), dt.date(2009, 3, 31)), "2022": (dt.date(2022, 1, 1),
                                                                                      dt.date(2022, 12, 31))}


def _calls(n: int, right: float, seed: int = 0) -> tuple[pd.Series, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = pd.Series(pd.bdate_range("2008-01-02", periods=n, tz="UTC"))
    y = rng.integers(0, 3, n)
    called = np.where(rng.random(n) < right, y, rng.integers(0, 3, n))
    proba = np.full((n, 3), 0.2)
    proba[np.arange(n), called] = 0.6
    move = np.where(y == 2, 0.01, np.where(y == 0, -0.01, 0.0)) + rng.normal(0, 0.002, n)
    return ts, proba, y, move, move


def test_only_the_windows_the_forecasts_cover_are_reported_with_their_own_numbers():
    ts, proba, y, forward, next_bar = _calls(400, 0.5)  # 2008-01-02 .. mid 2009: the crisis, not 2022
    [row] = stress_rows(ts, proba, y, forward, next_bar, WINDOWS, 252)
    inside = ((ts.dt.date >= dt.date(2008, 9, 1)) & (ts.dt.date <= dt.date(2009, 3, 31))).to_numpy()
    assert row["window"] == "2008-09..2009-03" and row["forecasts"] == int(inside.sum())
    assert row["accuracy"] == round(float((proba[inside].argmax(axis=1) == y[inside]).mean()), 4)
    assert row["log_loss_skill"] > 0 and row["ic"] > 0  # calls right half the time against a uniform class mix


def test_the_bootstrap_band_holds_zero_without_skill_and_excludes_it_with_skill():
    _, proba, _, _, next_bar = _calls(750, 0.0, seed=1)  # calls at random
    none = bootstrap_book(book_returns(proba, next_bar, cost_bps=0), 252, paths=1000)
    assert none is not None and none["sharpe"]["p5"] < 0 < none["sharpe"]["p95"]
    assert 0.05 < none["p_loss"] < 0.95
    paying = bootstrap_book(book_returns(proba, next_bar), 252, paths=1000)  # and it pays its costs: it loses
    assert paying is not None and paying["sharpe"]["p95"] < 0 and paying["p_loss"] > 0.95
    _, proba, _, _, next_bar = _calls(750, 0.6, seed=1)
    skilled = bootstrap_book(book_returns(proba, next_bar), 252, paths=1000)
    assert skilled is not None and skilled["sharpe"]["p5"] > 0 and skilled["p_loss"] == 0.0
    assert "P(loss) 0.00 over 1000 paths" in describe_bootstrap(skilled)
    assert bootstrap_book(np.zeros(10), 252) is None
