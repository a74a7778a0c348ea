"""Out-of-sample evaluation, always next to the naive baselines on the same rows (`model.baselines`): climatology,
the class shares of the rows the model was fitted on, and persistence, the shares that followed the last *known*
label (the label of bar t - horizon, the most recent one whose future had happened by bar t). Every forecaster is
scored on probabilities (log-loss, Brier score, calibration error) and on its calls (accuracy, IC, a long/short book).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from market_mlops.model.baselines import BASELINES, BaselineTables
from market_mlops.model.calibration import probability_scores
from market_mlops.model.ensemble import log_loss
from market_mlops.model.labels import CLASSES

COST_BPS = 10.0


def classification_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro F1, log-loss, the confusion matrix (rows true, columns predicted) and each
    class's precision and recall, as scikit-learn defines them (zero where a class is never predicted or never true),
    from one confusion matrix: scikit-learn's argument checks cost ~30 ms a call, and a retrain makes ~20."""
    y = y.astype(int)
    pred = proba.argmax(axis=1)
    confusion = np.bincount(3 * y + pred, minlength=9).reshape(3, 3)
    hits = np.diag(confusion).astype(float)
    true_counts, pred_counts = confusion.sum(axis=1), confusion.sum(axis=0)
    precision = np.divide(hits, pred_counts, out=np.zeros(3), where=pred_counts > 0)
    recall = np.divide(hits, true_counts, out=np.zeros(3), where=true_counts > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(3), where=both > 0)
    out: dict[str, Any] = {
        "accuracy": float(hits.sum() / max(len(y), 1)),
        "balanced_accuracy": float(recall[true_counts > 0].mean()) if (true_counts > 0).any() else 0.0,
        "macro_f1": float(f1.mean()),
        "log_loss": log_loss(y, proba),
        "confusion": confusion.tolist(),
    }
    for i, name in enumerate(CLASSES):
        out[f"precision_{name.lower()}"] = float(precision[i])
        out[f"recall_{name.lower()}"] = float(recall[i])
    return out


def direction_hit_rate(pred: np.ndarray, forward_return: np.ndarray) -> float:
    """Among bars called BULLISH or BEARISH, the share whose forward return had that sign."""
    called = pred != 1
    if not called.any():
        return float("nan")
    sign = np.where(pred[called] == 2, 1.0, -1.0)
    return float(np.mean(sign * forward_return[called] > 0))


def long_flat_return(pred: np.ndarray, next_bar_return: np.ndarray, cost_bps: float = COST_BPS) -> float:
    """Total return of holding one bar long after each BULLISH call, flat otherwise, after costs per position change."""
    position = (pred == 2).astype(float)
    turnover = np.abs(np.diff(np.concatenate([[0.0], position])))
    pnl = position * next_bar_return - turnover * cost_bps / 1e4
    return float(np.prod(1 + pnl) - 1)


def book_returns(proba: np.ndarray, next_bar_return: np.ndarray,
                 cost_bps: float = COST_BPS) -> tuple[np.ndarray, np.ndarray]:
    """Per bar, the long/short book's return after costs (+1 after a BULLISH call, -1 after BEARISH, flat after
    NEUTRAL, held one bar, `cost_bps` per unit of position change) and its position changes."""
    pred = proba.argmax(axis=1)
    position = np.where(pred == 2, 1.0, np.where(pred == 0, -1.0, 0.0))
    changes = np.abs(np.diff(np.concatenate([[0.0], position])))
    return np.asarray(position * next_bar_return - changes * cost_bps / 1e4, dtype=float), changes


def finance_metrics(proba: np.ndarray, forward_return: np.ndarray, next_bar_return: np.ndarray, bars_per_year: int,
                    cost_bps: float = COST_BPS) -> dict[str, float]:
    """What a trader asks beside accuracy. The score is P(bullish) - P(bearish): its information coefficient (Pearson)
    and rank IC (Spearman) against the forward return; a long/short book (+1 after a BULLISH call, -1 after BEARISH,
    flat after NEUTRAL, held one bar) after `cost_bps` per unit of position change: total return, annualised Sharpe,
    maximum drawdown, and turnover (mean position change per bar)."""
    import warnings

    from scipy.stats import ConstantInputWarning, spearmanr

    score = proba[:, 2] - proba[:, 0]
    varied = len(score) > 2 and np.ptp(score) > 0 and np.ptp(forward_return) > 0  # a constant side has no correlation
    ic = float(np.corrcoef(score, forward_return)[0, 1]) if varied else float("nan")
    with warnings.catch_warnings():  # scores that differ by rounding only rank as ties: NaN, no warning per holdout
        warnings.simplefilter("ignore", ConstantInputWarning)
        rank_ic = float(spearmanr(score, forward_return).statistic) if varied else float("nan")
    pnl, changes = book_returns(proba, next_bar_return, cost_bps)
    equity = np.cumprod(1 + pnl)
    drawdown = float(np.max(1 - equity / np.maximum(np.maximum.accumulate(equity), 1.0))) if len(equity) else 0.0
    sd = float(np.std(pnl))
    return {"ic": ic, "rank_ic": rank_ic, "long_short_return": float(equity[-1] - 1) if len(equity) else 0.0,
            "long_short_sharpe": float(np.mean(pnl) / sd * np.sqrt(bars_per_year)) if sd > 0 else 0.0,
            "long_short_max_drawdown": drawdown, "turnover": float(np.mean(changes)) if len(changes) else 0.0}


def evaluate_with_baselines(y: np.ndarray, proba: np.ndarray, baselines: dict[str, np.ndarray],
                            forward_return: np.ndarray, next_bar_return: np.ndarray,
                            bars_per_year: int = 252) -> dict[str, Any]:
    """Model metrics and each baseline's (`baselines`: name -> probabilities on the same rows) on the same rows,
    keys prefixed model_, climatology_, persistence_; `better_baseline`: the one with the lower log-loss."""
    out: dict[str, Any] = {"rows": int(len(y))}
    for name, p in {"model": proba, **baselines}.items():
        metrics = classification_metrics(y, p)
        metrics.update(probability_scores(y, p))
        pred = p.argmax(axis=1)
        metrics["direction_hit_rate"] = direction_hit_rate(pred, forward_return)
        metrics["long_flat_return"] = long_flat_return(pred, next_bar_return)
        metrics.update(finance_metrics(p, forward_return, next_bar_return, bars_per_year))
        out.update({f"{name}_{k}": v for k, v in metrics.items()})
    if baselines:
        out["better_baseline"] = min(baselines, key=lambda b: (out[f"{b}_log_loss"], b))
    out["buy_and_hold_return"] = float(np.prod(1 + next_bar_return) - 1)
    return out


def baseline_probabilities(y: np.ndarray, rows: np.ndarray, fit_rows: np.ndarray, horizon: int,
                           last_known: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each baseline's probabilities on `rows`, counted on `fit_rows` (the rows the model was fitted on).
    `last_known`: each row's last known label, by bar position (NaN where none is known); without it, the label
    `horizon` rows earlier (the same where no row was dropped between)."""
    if last_known is None:
        known = np.full(len(y), np.nan)
        known[horizon:] = y[:-horizon]
    else:
        known = np.asarray(last_known, dtype=float)
    tables = BaselineTables.fit(y[fit_rows], known[fit_rows])
    return tables.all_probabilities(known[rows], len(rows))


def evaluate_holdout(y: np.ndarray, proba: np.ndarray, close: np.ndarray, rows: np.ndarray, fit_rows: np.ndarray,
                     horizon: int, bars_per_year: int = 252, last_known: np.ndarray | None = None,
                     baselines: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """`evaluate_with_baselines` on `rows` of a series (`baselines`: their probabilities there, default those of
    `baseline_probabilities`), forward and next-bar returns from the closes (0 where the future is unknown)."""
    forward = np.zeros(len(close))
    forward[:-horizon] = close[horizon:] / close[:-horizon] - 1
    next_bar = np.append(close[1:] / close[:-1] - 1, 0.0)
    if baselines is None:
        baselines = baseline_probabilities(y, rows, fit_rows, horizon, last_known)
    return evaluate_with_baselines(y[rows], proba, {b: baselines[b] for b in BASELINES}, forward[rows],
                                   next_bar[rows], bars_per_year)


@dataclass(frozen=True)
class AccuracyDifference:
    """accuracy(a) - accuracy(b) on the same rows: its mean, a two-sided bootstrap interval, the block length the
    bootstrap resampled and the rows' effective count (rows / horizon: overlapping labels share their outcomes)."""

    mean: float
    low: float
    high: float
    block: int
    effective_rows: float


def gate_block_length(correct_diff: np.ndarray, horizon: int) -> int:
    """Block length for the bootstrap of a paired accuracy difference: the larger of 2 x horizon (neighbouring labels
    share up to `horizon` - 1 bars of their future) and Politis and White's (2004, corrected by Patton, Politis and
    White 2009) automatic choice for the circular block bootstrap, which sees dependence beyond the overlap;
    at most a quarter of the rows."""
    from arch.bootstrap import optimal_block_length

    n = len(correct_diff)
    floor = 2 * max(1, horizon)
    automatic = 1.0
    if n > 8 and np.ptp(correct_diff) > 0:
        estimate = float(optimal_block_length(correct_diff)["circular"].iloc[0])
        automatic = estimate if np.isfinite(estimate) else 1.0
    return int(max(1, min(max(floor, int(np.ceil(automatic))), n // 4 or 1)))


def bootstrap_accuracy_difference(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, samples: int, seed: int,
                                  horizon: int = 1, confidence: float = 0.90) -> AccuracyDifference:
    """Mean and two-sided `confidence` interval of accuracy(a) - accuracy(b): a circular block bootstrap
    (`arch.bootstrap`) of the per-row difference in correctness, blocks of `gate_block_length` rows (labels overlap
    in time, so rows are not independent)."""
    from arch.bootstrap import CircularBlockBootstrap

    correct_diff = (pred_a == y).astype(float) - (pred_b == y).astype(float)
    n = len(correct_diff)
    mean = float(correct_diff.mean()) if n else float("nan")
    effective = n / max(1, horizon)
    if n < 2 or np.ptp(correct_diff) == 0:  # nothing to resample: the interval is the point
        return AccuracyDifference(mean, mean, mean, 1, effective)
    block = gate_block_length(correct_diff, horizon)
    bootstrap = CircularBlockBootstrap(block, correct_diff, seed=np.random.default_rng(seed))
    # A percentile interval cannot reach a tail beyond its most extreme resample: for a small tail (the weekly
    # refresh spends its error over many tests) the bootstrap's standard error with the normal quantile instead.
    method: Literal["percentile", "norm"] = "percentile" if (1 - confidence) / 2 * samples >= 10 else "norm"
    low, high = bootstrap.conf_int(np.mean, reps=samples, method=method, size=confidence)[:, 0]
    return AccuracyDifference(mean, float(low), float(high), block, effective)
