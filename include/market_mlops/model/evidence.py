"""Evidence that one forecaster scores better than another, valid however often it is looked at.

The statistic is the per-row score difference d = score(b) - score(a) (log-loss, or 0/1 misses for accuracy): a is
better when its mean is above zero. The test is a betting e-process (Shafer and Vovk 2019; Waudby-Smith and Ramdas
2024, "Estimating means of bounded random variables by betting", JRSS-B 86(1)): a gambler starts with 1 and bets a
predictable fraction lambda_i of her wealth on each outcome, K_n = prod(1 + lambda_i d_i). If a is not better
(E[d_i | past] <= 0) the wealth is a nonnegative supermartingale, so by Ville's inequality it ever reaches 1/alpha
with probability at most alpha: the test can be read after every outcome, for ever, at level alpha. The bet is
aGRAPA's (the same paper): lambda_i = mean / (variance + mean^2) of the earlier d, capped at half of 1 / B_i, where
-B_i is the lowest d_i could be given the two forecasts (known before the outcome: a log-loss difference is bounded
by the log-ratio of the two forecasts' probabilities).

The null is conditional: at every outcome, given everything before it, a is not expected to score better than b.
A challenger whose edge comes and goes with the market (better in volatile spells, worse in calm ones, zero on
average) violates it wherever it is better, and a long enough record finds that: the gate promotes a model that is
better somewhere, not one that is better on average (measured by an independent review: a zero-average,
regime-switching challenger is promoted on 1.2 % of 400-row holdouts at 1/240 and on about 5 % of 1,000-session
live records at 1/300).

Overlapping labels: a label looks `horizon` bars ahead, so neighbouring rows share their future. Only rows `horizon`
apart are separate outcomes: the e-process runs on every `horizon`-th row. A batch read once (a retrain's holdout)
averages the final wealth of the `horizon` offsets, which is still an e-value (each has expectation <= 1); a live
record read after every session runs on one offset (its first paired session), as an e-process must.

The authors' package (`confseq`) builds C++ from source and pulls matplotlib and pytest into the runtime; the one
formula needed here is a dozen lines of numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BET_CAP = 0.5  # of 1 / B_i: never bet more than half the wealth the worst outcome could take
PRIOR_WEIGHT = 1.0  # pseudo-outcomes of the bet's running mean (at 0) and variance


@dataclass(frozen=True)
class Evidence:
    """What a comparison found: the mean difference (positive: the first forecaster is better), its interval at the
    test's level, the e-value against "not better" and the threshold it must reach (1 / alpha), and how many
    rows and separate outcomes (rows / horizon) it rests on."""

    mean: float
    low: float
    high: float
    e_value: float
    threshold: float
    rows: int
    outcomes: float
    metric: str = "log_loss"

    @property
    def proven(self) -> bool:
        return bool(self.e_value >= self.threshold)

    def describe(self) -> str:
        unit = " nats" if self.metric == "log_loss" else ""
        interval = f" [{self.low:+.4f}, {self.high:+.4f}]" if np.isfinite(self.low) and np.isfinite(self.high) else ""
        return (f"{self.mean:+.4f}{unit}{interval} on {self.outcomes:.0f} outcomes, "
                f"e-value {_short(self.e_value)} (needs {_short(self.threshold)})")


def _short(value: float) -> str:
    return f"{value:.3g}" if value < 1e4 else f"{value:.2e}"


def log_loss_differences(y: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                           np.ndarray]:
    """(d, lowest, highest) per row: d = log-loss(b) - log-loss(a) = ln p_a(y) - ln p_b(y), and the range it could take
    whatever the outcome (min and max over the classes of ln p_a - ln p_b)."""
    ratio = np.log(np.clip(proba_a, 1e-12, 1.0)) - np.log(np.clip(proba_b, 1e-12, 1.0))
    y = np.asarray(y, dtype=int)
    return ratio[np.arange(len(y)), y], ratio.min(axis=1), ratio.max(axis=1)


def hit_differences(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d, lowest, highest) per row for accuracy: 1 where only a is right, -1 where only b is; 0 either way where both
    call the same class."""
    y = np.asarray(y, dtype=int)
    d = (pred_a == y).astype(float) - (pred_b == y).astype(float)
    differ = (pred_a != pred_b).astype(float)
    return d, -differ, differ


def wealth(d: np.ndarray, lowest: np.ndarray, null_mean: float = 0.0) -> np.ndarray:
    """The betting wealth after each row against "mean of d <= null_mean" (rows in time order, separate outcomes)."""
    x = np.asarray(d, dtype=float) - null_mean
    if not len(x):
        return np.ones(0)
    # How far below the null d_i can fall (known before its outcome: the two forecasts bound it). A row that cannot
    # fall below it (two forecasts calling the same class) is bet on as if it could fall by the typical reach so far:
    # smaller bets stay valid and no bet is unbounded. Everything a bet reads is known before its outcome (running
    # figures of the rows up to it, never the record's later rows): the wealth is a test supermartingale.
    reach = null_mean - np.asarray(lowest, dtype=float)
    typical = np.cumsum(np.maximum(reach, 0.0)) / np.arange(1, len(reach) + 1)
    reach = np.maximum(reach, np.maximum(typical, 1e-6))
    n_before = PRIOR_WEIGHT + np.arange(len(x))
    sums = np.concatenate([[0.0], np.cumsum(x)[:-1]])
    squares = np.concatenate([[0.0], np.cumsum(x ** 2)[:-1]])
    mean = sums / n_before
    prior_variance = np.maximum(typical, 1e-6) ** 2 / 4
    variance = (squares - n_before * mean ** 2 + PRIOR_WEIGHT * prior_variance) / n_before
    bet = np.clip(mean / (np.maximum(variance, 1e-12) + mean ** 2), 0.0, BET_CAP / reach)
    # In logs: a strong edge's wealth passes 1e308 long before a record ends.
    return np.exp(np.minimum(np.cumsum(np.log1p(bet * x)), 700.0))


def outcome_offsets(rows: int, horizon: int) -> list[np.ndarray]:
    """Row positions of each offset's separate outcomes: 0, h, 2h...; 1, h + 1...; up to h - 1."""
    step = max(1, int(horizon))
    return [np.arange(offset, rows, step) for offset in range(min(step, rows))]


def batch_e_value(d: np.ndarray, lowest: np.ndarray, horizon: int, null_mean: float = 0.0) -> float:
    """An e-value for a batch read once: the final wealth of each offset's outcomes, averaged."""
    offsets = outcome_offsets(len(d), horizon)
    if not offsets:
        return 1.0
    return float(np.mean([wealth(d[rows], lowest[rows], null_mean)[-1] for rows in offsets]))


def sequential_e_value(d: np.ndarray, lowest: np.ndarray, horizon: int, null_mean: float = 0.0,
                       segments: np.ndarray | None = None) -> float:
    """The largest wealth reached so far on one offset's outcomes (rows 0, h, 2h... in time order): Ville's
    inequality bounds the chance that it ever crosses 1 / alpha, so reading it after every session is valid.
    `segments`: a label per row (which challenger forecast it); the bet's running figures start again at each new
    label and the wealth carries on (a product of test supermartingales, each started where the last ended), so a
    poor earlier challenger does not hold a later one's bets down."""
    rows = np.arange(0, len(d), max(1, int(horizon)))
    if segments is None:
        path = wealth(d[rows], lowest[rows], null_mean)
    else:
        labels = np.asarray(segments)[rows]
        starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]]) if len(rows) else np.zeros(0, dtype=int)
        paths, carried = [], 1.0
        for start, end in zip(starts, [*starts[1:], len(rows)], strict=True):
            block = wealth(d[rows[start:end]], lowest[rows[start:end]], null_mean) * carried
            paths.append(block)
            carried = float(block[-1])
        path = np.concatenate(paths) if paths else np.ones(0)
    return float(path.max()) if len(path) else 1.0


def _bound(d: np.ndarray, lowest: np.ndarray, highest: np.ndarray, horizon: int, alpha: float, sequential: bool,
           segments: np.ndarray | None = None) -> float:
    """The lowest mean not rejected at `alpha` (bisection on the null mean: the e-value falls as it rises)."""
    def e_of(m: float) -> float:
        return sequential_e_value(d, lowest, horizon, m, segments) if sequential else \
            batch_e_value(d, lowest, horizon, m)

    low, high = float(np.min(lowest)), float(np.max(highest))
    if e_of(low) < 1 / alpha:
        return low
    for _ in range(30):  # the range / 2^30: finer than the 4 decimals shown
        middle = (low + high) / 2
        if e_of(middle) >= 1 / alpha:
            low = middle
        else:
            high = middle
    return low


def compare(d: np.ndarray, lowest: np.ndarray, highest: np.ndarray, horizon: int, alpha: float,
            sequential: bool = False, metric: str = "log_loss", interval: bool = True,
            segments: np.ndarray | None = None) -> Evidence:
    """Evidence that the mean of `d` is above zero at level `alpha` (`sequential`: a live record read after every
    session; else a batch read once); the interval's ends are the means the same test would reject on each side."""
    d = np.asarray(d, dtype=float)
    lowest, highest = np.asarray(lowest, dtype=float), np.asarray(highest, dtype=float)
    outcomes = len(d) / max(1, int(horizon))
    if not len(d):
        return Evidence(float("nan"), float("nan"), float("nan"), 1.0, 1 / alpha, 0, 0.0, metric)
    e_value = sequential_e_value(d, lowest, horizon, 0.0, segments) if sequential else batch_e_value(d, lowest, horizon)
    low = high = float("nan")
    if interval:
        ends = (_bound(d, lowest, highest, horizon, alpha, sequential, segments),
                -_bound(-d, -highest, -lowest, horizon, alpha, sequential, segments))
        low, high = min(ends), max(ends)  # an adaptive bet is not monotone in the null: never a reversed interval
    return Evidence(float(d.mean()), low, high, e_value, 1 / alpha, int(len(d)), outcomes, metric)


def score_evidence(y: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray, horizon: int, alpha: float,
                   metric: str = "log_loss", sequential: bool = False, interval: bool = True,
                   segments: np.ndarray | None = None) -> Evidence:
    """Evidence that forecaster a scores better than b on `metric` (log_loss, or accuracy: their calls) on the same
    rows (in time order), at level `alpha` (`segments`: see `sequential_e_value`)."""
    if metric != "accuracy":
        return compare(*log_loss_differences(y, proba_a, proba_b), horizon, alpha, sequential, metric, interval,
                       segments)
    d, low, high = hit_differences(y, proba_a.argmax(axis=1), proba_b.argmax(axis=1))
    evidence = compare(d, low, high, horizon, alpha, sequential, metric, interval=False, segments=segments)
    differ = high > 0
    if not interval:
        return evidence
    if not differ.any():  # the same calls on every row: the difference is exactly zero
        return Evidence(0.0, 0.0, 0.0, evidence.e_value, evidence.threshold, evidence.rows, evidence.outcomes, metric)
    # Rows where both call the same class add 0 exactly: the interval is read on the rows where the calls differ
    # and scaled by their share (on all rows, their certain zeros would make every mean below 0 look rejected).
    share = float(differ.mean())
    on_differing = compare(d[differ], low[differ], high[differ], horizon, alpha, sequential, metric)
    return Evidence(evidence.mean, share * on_differing.low, share * on_differing.high, evidence.e_value,
                    evidence.threshold, evidence.rows, evidence.outcomes, metric)
