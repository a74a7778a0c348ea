"""`make bench`, the gate: how often a challenger with no skill is promoted, per test and per champion-year.

The null: the suite's generator with no planted signal (`signal_strength` 0), labelled with the default volatility
band at h1, h5 and h20; the baselines counted on the rows before each holdout, as the retrain counts them. A
no-skill challenger is the two baselines pooled (a random log-linear weight, as the calibration pool could learn)
with Dirichlet noise on top: it knows nothing the baselines do not, yet on any one holdout it can look better than
either. Each test is the gate's own (`model.evidence.score_evidence` against both baselines at the test's level,
`training.min_compare_outcomes`).

A champion-year is 12 monthly retrains (holdouts of 400 rows, a month, 21 rows, apart: they overlap), 52 weekly
refreshes (100 evaluation rows, a week apart, against a no-skill champion model) and the live records of the 12
challengers the retrains kept (each from its cutoff to the year's end, read after every session); a year with any
promotion counts once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from market_mlops.dev.bench.figures import figure_row

HOLDOUT_ROWS = 400  # a retrain's holdout on 8 years of daily bars (20 %)
REFRESH_ROWS = 100  # a refresh's evaluation rows (40 % of its 250-row window)
MONTH, WEEK, YEAR = 21, 5, 252


@dataclass
class NullSeries:
    y: np.ndarray  # labels (int), NaN-free from the first row
    last_known: np.ndarray  # the label `horizon` rows earlier (NaN before)
    horizon: int


def null_series(seed: int, horizon: int, years: int = 11) -> NullSeries:
    """Labels of a generated daily series with no planted signal."""
    import pandas as pd

    from market_mlops.config import LabelSpec
    from market_mlops.data.synthetic import GeneratorSpec, generate_bars
    from market_mlops.model.labels import direction_labels

    bars = generate_bars(GeneratorSpec(seed=seed, signal_strength=0.0, benchmark=None, origin=dt.date(2010, 1, 4)),
                         ["AAA"], "d1", dt.date(2010, 1, 4), dt.date(2010 + years, 12, 31))
    labels = direction_labels(bars["close"].reset_index(drop=True), horizon, LabelSpec())
    known = labels.shift(horizon)
    keep = labels.notna().to_numpy()
    first = int(np.argmax(keep))
    y = labels.to_numpy()[first:]
    usable = np.isfinite(y)
    return NullSeries(y[usable].astype(int), pd.Series(known.to_numpy()[first:][usable]).to_numpy(dtype=float), horizon)


def no_skill(rng: np.random.Generator, climatology: np.ndarray, persistence: np.ndarray) -> np.ndarray:
    """The baselines pooled with a random weight and a random temperature, plus Dirichlet noise: no information beyond
    theirs."""
    from market_mlops.model.baselines import floor_probabilities

    w = rng.uniform(0, 1)
    logits = rng.uniform(0.7, 1.3) * (w * np.log(persistence) + (1 - w) * np.log(climatology))
    pooled = np.exp(logits - logits.max(axis=1, keepdims=True))
    pooled /= pooled.sum(axis=1, keepdims=True)
    draws = rng.gamma(pooled * 200 + 1e-3)  # a Dirichlet draw per row, around the pool
    return floor_probabilities(draws / draws.sum(axis=1, keepdims=True))


def _baselines(series: NullSeries, fit: slice, rows: slice) -> dict[str, np.ndarray]:
    from market_mlops.model.baselines import BaselineTables

    tables = BaselineTables.fit(series.y[fit], series.last_known[fit])
    n = len(series.y[rows])
    return tables.all_probabilities(series.last_known[rows], n)


def _proven_over(y: np.ndarray, challenger: np.ndarray, others: list[np.ndarray], horizon: int, alpha: float,
                 min_outcomes: float, sequential: bool = False) -> bool:
    from market_mlops.model.evidence import score_evidence

    if len(y) / horizon < min_outcomes:
        return False
    return all(score_evidence(y, challenger, o, horizon, alpha, sequential=sequential, interval=False).proven
               for o in others)


def retrain_test(series: NullSeries, cutoff: int, rng: np.random.Generator, alpha: float,
                 min_outcomes: float) -> tuple[bool, np.ndarray, dict[str, np.ndarray]]:
    """One retrain's gate on the holdout ending at `cutoff`: whether it promoted a no-skill challenger, the
    challenger and the baselines' probabilities there."""
    holdout = slice(cutoff - HOLDOUT_ROWS, cutoff)
    fit = slice(0, cutoff - HOLDOUT_ROWS - series.horizon)
    base = _baselines(series, fit, holdout)
    challenger = no_skill(rng, base["climatology"], base["persistence"])
    y = series.y[holdout]
    return _proven_over(y, challenger, list(base.values()), series.horizon, alpha, min_outcomes), challenger, base


def holdouts(horizon: int, draws: int, seeds: list[int],
             seed: int) -> Iterator[tuple[int, np.random.Generator, np.ndarray, dict[str, np.ndarray]]]:
    """`draws` holdouts of the null series at random cutoffs: (draw, its generator, labels, baselines there)."""
    rng = np.random.default_rng(seed)
    series = [null_series(s, horizon) for s in seeds]
    for i in range(draws):
        s = series[i % len(series)]
        cutoff = int(rng.integers(HOLDOUT_ROWS * 3, len(s.y) - YEAR))
        holdout = slice(cutoff - HOLDOUT_ROWS, cutoff)
        yield i, rng, s.y[holdout], _baselines(s, slice(0, cutoff - HOLDOUT_ROWS - horizon), holdout)


def per_test_rate(horizon: int, draws: int, seeds: list[int], alpha: float, min_outcomes: float) -> tuple[float, int]:
    """Share of single retrain gates that promote a no-skill challenger; and the draws."""
    promoted = sum(_proven_over(y, no_skill(rng, base["climatology"], base["persistence"]), list(base.values()),
                                horizon, alpha, min_outcomes)
                   for _, rng, y, base in holdouts(horizon, draws, seeds, horizon))
    return promoted / draws, draws


def old_gate_rate(horizon: int, draws: int, seeds: list[int]) -> float:
    """The same no-skill challengers through the gate of stop 42 (block-bootstrap accuracy interval against the
    better baseline's calls, lower end above zero at 90 % two-sided): how often it promoted them."""
    from market_mlops.model.evaluation import bootstrap_accuracy_difference

    promoted = 0
    for i, rng, y, base in holdouts(horizon, draws, seeds, horizon):
        challenger = no_skill(rng, base["climatology"], base["persistence"])
        better = max(base.values(), key=lambda p: float((p.argmax(axis=1) == y).mean()))
        promoted += bootstrap_accuracy_difference(y, challenger.argmax(axis=1), better.argmax(axis=1), 300, i,
                                                  horizon).low > 0
    return promoted / draws


def power(horizon: int, draws: int, seeds: list[int], alpha: float, min_outcomes: float,
          knowledge: float) -> tuple[float, float]:
    """Share of retrain gates that promote a challenger with a real edge: the no-skill pool mixed with the observed
    class at weight `knowledge` (an oracle's share, to plant a known skill); and its mean log-loss skill (nats)."""
    from market_mlops.model.calibration import log_loss_rows

    promoted, skill = 0, []
    for _, rng, y, base in holdouts(horizon, draws, seeds, 1000 + horizon):
        informed = (1 - knowledge) * no_skill(rng, base["climatology"], base["persistence"]) + \
            knowledge * np.eye(3)[y]
        promoted += _proven_over(y, informed, list(base.values()), horizon, alpha, min_outcomes)
        skill.append(min(float(log_loss_rows(y, b).mean() - log_loss_rows(y, informed).mean()) for b in base.values()))
    return promoted / draws, float(np.mean(skill))


def champion_year(series: NullSeries, start: int, rng: np.random.Generator, levels: dict[str, float],
                  min_outcomes: float) -> dict[str, bool]:
    """One champion-year: which kinds of test promoted a no-skill challenger (a baseline champion for the retrains
    and live records, as a series with no skill is served; a no-skill champion model for the refreshes)."""
    h = series.horizon
    found = {"retrain": False, "refresh": False, "shadow": False}
    end = start + YEAR
    for month in range(12):
        cutoff = start + month * MONTH
        promoted, _challenger, base = retrain_test(series, cutoff, rng, levels["retrain"], min_outcomes)
        found["retrain"] |= promoted
        # The kept challenger forecasts live from its cutoff to the year's end (its tables and pool as trained).
        live = slice(cutoff, end)
        live_base = _baselines(series, slice(0, cutoff - h), live)
        challenger = no_skill(rng, live_base["climatology"], live_base["persistence"])
        champion = min(live_base.values(), key=lambda p: float(np.mean(p)))  # either baseline: same null
        found["shadow"] |= _proven_over(series.y[live], challenger, [champion, *live_base.values()], h,
                                        levels["shadow"], min_outcomes, sequential=True)
    for week in range(52):
        cutoff = start + week * WEEK
        rows = slice(cutoff - REFRESH_ROWS, cutoff)
        base = _baselines(series, slice(0, cutoff - REFRESH_ROWS - h), rows)
        champion = no_skill(rng, base["climatology"], base["persistence"])
        challenger = no_skill(rng, base["climatology"], base["persistence"])
        found["refresh"] |= _proven_over(series.y[rows], challenger, [champion, *base.values()], h, levels["refresh"],
                                         min_outcomes)
    return found


def per_year_rate(horizon: int, years: int, seeds: list[int], levels: dict[str, float],
                  min_outcomes: float) -> tuple[float, dict[str, float]]:
    rng = np.random.default_rng(100 + horizon)
    series = [null_series(s, horizon) for s in seeds]
    counts = {"retrain": 0, "refresh": 0, "shadow": 0}
    any_year = 0
    for i in range(years):
        s = series[i % len(series)]
        start = int(rng.integers(HOLDOUT_ROWS * 3, len(s.y) - YEAR))
        found = champion_year(s, start, rng, levels, min_outcomes)
        any_year += any(found.values())
        for k, v in found.items():
            counts[k] += v
    return any_year / years, {k: v / years for k, v in counts.items()}


def false_promotions(per_test_draws: int = 3000, years: int = 300) -> list[dict[str, Any]]:
    """The bench rows: per test (a retrain's gate) at h1, h5 and h20 beside its level plus one standard error, and
    per champion-year beside `training.yearly_false_promotions`."""
    from market_mlops.config import Training
    from market_mlops.registry.gate import TESTS_PER_YEAR, level_of

    training = Training()
    yearly = training.yearly_false_promotions
    levels: dict[str, float] = {kind: level_of(kind, yearly) for kind in TESTS_PER_YEAR}
    seeds = list(range(31, 43))
    rows = []
    for horizon in (1, 5, 20):
        rate, draws = per_test_rate(horizon, per_test_draws, seeds, levels["retrain"], training.min_compare_outcomes)
        se = float(np.sqrt(levels["retrain"] * (1 - levels["retrain"]) / draws))
        thin = HOLDOUT_ROWS / horizon < training.min_compare_outcomes
        rows.append(figure_row(f"false promotions per retrain test, h{horizon}", rate * 100, "%",
                         f"<= {(levels['retrain'] + se) * 100:.2f}", rate <= levels["retrain"] + se,
                         f"{draws} no-skill challengers on {HOLDOUT_ROWS}-row holdouts, level {levels['retrain']:.4f}"
                         + (f"; {HOLDOUT_ROWS / horizon:.0f} outcomes < {training.min_compare_outcomes}: never judged"
                            if thin else "")))
    for horizon in (1, 5):
        old = old_gate_rate(horizon, min(per_test_draws, 1000), seeds)
        rows.append(figure_row(f"  the accuracy bootstrap gate of stop 42 on the same challengers, h{horizon}", old * 100,
                         "%", "", None, "nominal 5 % one-sided; the same draws, for comparison"))
    for horizon in (1, 5):
        for knowledge in (0.01, 0.03):
            rate, skill = power(horizon, 300, seeds, levels["retrain"], training.min_compare_outcomes, knowledge)
            rows.append(figure_row(f"  power at a planted edge, h{horizon}, skill {skill:+.3f} nats", rate * 100, "%", "",
                             None, f"share of 300 challengers promoted on a {HOLDOUT_ROWS}-row holdout (an oracle's "
                             f"{knowledge:.0%} mixed in)"))
    for horizon in (1, 5, 20):
        rate, parts = per_year_rate(horizon, years, seeds, levels, training.min_compare_outcomes)
        rows.append(figure_row(f"false promotions per champion-year, h{horizon}", rate * 100, "%", f"<= {yearly * 100:g}",
                         rate <= yearly, f"{years} years of 12 retrains + 12 live records + 52 refreshes; by kind: "
                         + ", ".join(f"{k} {v * 100:.1f} %" for k, v in parts.items())))
    return rows
