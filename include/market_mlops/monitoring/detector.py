"""The accuracy bands as sequential change detectors: one Bernoulli CUSUM per band on the champion's resolved calls.

A window's accuracy judged against a confidence bound is blind where few outcomes resolve (a 5-session label gives a
window of 150 forecasts 30 outcomes) and its false-alarm rate over daily checks is not designed. Page's CUSUM
(Page 1954) accumulates the log-likelihood ratio of "accuracy dropped by the band's edge" against "accuracy is the
reference" over every resolved call since the champion began serving, resetting at zero:

    S_t = max(0, S_{t-1} + w * (x_t ln(p1/p0) + (1 - x_t) ln((1 - p1)/(1 - p0)))),  p1 = p0 + edge/100,

x_t = 1 for a right call. Calls whose `horizon`-bar labels overlap may share outcomes: each weighs w = 1/c, c the
calls that carry one outcome's information, measured on the calls themselves (`calls_per_outcome`: between 1 for a
call that moves bar to bar and `horizon` for one that never moves). A band is raised while its statistic is at or
above its threshold; the threshold is set from the band's designed average run length under no drift
(`Drift.*_alarm_checks`: checks between false alarms, a check a session) converted to outcomes, solved
with the Markov-chain approximation of Brook and Evans (1972). `make bench` measures the false alarms per check and
per champion-year, and the delays of planted drops, on generated no-drift series and a random walk.

The reference itself was measured on a few hundred out-of-sample rows: the calls are held to its one-sided lower
bound at `drift.band_confidence` (`held_reference`). Until the drift band's statistic could reach its threshold even
if every call since the start had missed, the check reads "too few outcomes (k of n)": nothing is judged, not
"normal".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from market_mlops.config import Drift
from market_mlops.contracts import Band

ALARM_BANDS: tuple[Band, ...] = ("monitor", "drift", "emergency")  # mildest first
SESSIONS_PER_YEAR = 252  # a check a session: a timeframe resolves bars_per_year / 252 calls a check
REFERENCE_ROWS = "drift.reference_rows"  # run metric: the out-of-sample rows the reference accuracy was measured on
GRID = 1000
MIN_LAGS = 10  # calls_per_outcome reads the hits' correlation over at least this many lags
PRIOR_LAGS = 1  # a record's count of calls per outcome weighs its first PRIOR_LAGS x lags calls toward the horizon
MIN_RUN = 5.0  # outcomes between false alarms at least (a 20-session label at 20 checks would be one outcome)  # states of the Markov chain that approximates the statistic below its threshold


@dataclass(frozen=True)
class BandDetector:
    """One band's CUSUM at a check."""

    band: Band
    edge_points: float  # the drop it is designed to detect (negative points)
    statistic: float
    threshold: float
    outcomes_between_alarms: float  # its designed average run length under no drift, in outcomes

    @property
    def alarm(self) -> bool:
        return self.statistic >= self.threshold


@dataclass(frozen=True)
class Detection:
    """The band a champion's calls are in, or None while too few outcomes resolved to judge any."""

    band: Band | None
    outcomes: float  # resolved calls / calls per outcome
    needed: float  # outcomes before the drift band could fire (every call missed)
    per_outcome: float  # resolved calls that carry one outcome (`calls_per_outcome`)
    held: float  # the accuracy the calls are held to (`held_reference`)
    detectors: tuple[BandDetector, ...]

    def describe(self) -> str:
        if self.band is None:
            return f"too few outcomes ({self.outcomes:.0f} of {self.needed:.0f}) to judge"
        parts = ", ".join(f"{d.band} {d.statistic:.2f} of {d.threshold:.2f}" for d in self.detectors)
        return (f"CUSUM on {self.outcomes:.1f} outcomes held to {self.held:.3f} (statistic of threshold: {parts})")


def steps(reference: float, edge_points: float) -> tuple[float, float]:
    """The log-likelihood-ratio step of a right call and of a wrong one (one outcome's weight)."""
    p0 = min(max(float(reference), 0.02), 0.98)
    p1 = min(max(p0 + edge_points / 100, 0.01), p0 - 0.005)
    return math.log(p1 / p0), math.log((1 - p1) / (1 - p0))


def run_length(threshold: float, reference: float, edge_points: float, grid: int = GRID) -> float:
    """Average outcomes to the first alarm from zero under no drift (accuracy = `reference`), by the Markov chain of
    the statistic on a grid of `grid` states below the threshold (Brook and Evans 1972)."""
    from scipy.sparse import csc_matrix, identity
    from scipy.sparse.linalg import spsolve

    right, wrong = steps(reference, edge_points)
    p0 = float(np.clip(reference, 0.02, 0.98))
    width = threshold / grid
    levels = np.where(np.arange(grid) > 0, (np.arange(grid) + 0.5) * width, 0.0)
    rows, cols, chances = [], [], []
    for step, chance in ((right, p0), (wrong, 1 - p0)):
        after = np.maximum(0.0, levels + step)
        inside = after < threshold
        rows.append(np.flatnonzero(inside))
        cols.append(np.minimum((after[inside] / width).astype(int), grid - 1))
        chances.append(np.full(int(inside.sum()), chance))
    chain = csc_matrix((np.concatenate(chances), (np.concatenate(rows), np.concatenate(cols))), shape=(grid, grid))
    lengths = spsolve((identity(grid, format="csc") - chain).tocsc(), np.ones(grid))
    return float(lengths[0])


@lru_cache(maxsize=4096)
def _threshold(reference: float, edge_points: float, outcomes: float) -> float:
    low, high = 1e-3, 1.0
    while run_length(high, reference, edge_points) < outcomes and high < 60:
        low, high = high, high * 2
    while high - low > 1e-3 * high:
        middle = (low + high) / 2
        low, high = (middle, high) if run_length(middle, reference, edge_points) < outcomes else (low, middle)
    return high


def threshold_for(reference: float, edge_points: float, outcomes_between_alarms: float) -> float:
    """The threshold whose average run length under no drift is `outcomes_between_alarms` (reference rounded to
    0.005, the run length to 2 digits: a fleet shares a few hundred thresholds)."""
    return _threshold(round(float(reference) * 200) / 200, float(edge_points),
                      float(f"{max(outcomes_between_alarms, 1.0):.2g}"))


def calls_per_outcome(hits: np.ndarray, horizon: int) -> float:
    """How many consecutive resolved calls carry one outcome's information: the long-run variance inflation of their
    mean, 1 + 2 sum_k (1 - k/L) rho_k (Bartlett weights, Newey and West 1987) over L = max(2 x horizon, MIN_LAGS)
    lags, between 1 and L. A caller whose call moves bar to bar has nearly independent hits even on overlapping
    labels; one that keeps its call (a climatology baseline) has hits as overlapped as its labels; a model whose
    skill comes and goes with the market's regime has hits that cluster beyond its horizon. A short record's
    estimate is shrunk toward the horizon (the cautious count) with the weight of `PRIOR_LAGS` x L calls, so the
    count moves smoothly as calls resolve (a hard switch rescaled the statistic in one step)."""
    h = max(1, int(horizon))
    lags = max(2 * h, MIN_LAGS)
    x = np.asarray(hits, float)
    prior = PRIOR_LAGS * lags
    if len(x) < 3 or x.std() == 0:
        return float(h)
    x = x - x.mean()
    denominator = float(np.dot(x, x))
    top = min(lags, len(x) - 1)
    inflation = 1.0 + 2.0 * sum((1 - k / lags) * float(np.dot(x[:-k], x[k:])) / denominator for k in range(1, top))
    estimate = float(np.clip(inflation, 1.0, lags))
    return (len(x) * estimate + prior * h) / (len(x) + prior)


def cusum(hits: np.ndarray, reference: float, edge_points: float, per_outcome: float) -> np.ndarray:
    """The statistic after each resolved call (time order), each call weighing 1/`per_outcome` of an outcome: Page's
    recursion S_n = max(0, S_n-1 + x_n) is the walk of the summed steps minus its lowest point so far (with 0)."""
    right, wrong = steps(reference, edge_points)
    walk = np.cumsum(np.where(np.asarray(hits, bool), right, wrong) / max(1.0, per_outcome))
    return walk - np.minimum(np.minimum.accumulate(walk), 0.0)


def edges(cfg: Drift) -> dict[Band, float]:
    return {"monitor": cfg.monitor_below, "drift": cfg.drift_below, "emergency": cfg.emergency_below}


def alarm_checks(cfg: Drift) -> dict[Band, float]:
    return {"monitor": cfg.monitor_alarm_checks, "drift": cfg.drift_alarm_checks,
            "emergency": cfg.emergency_alarm_checks}


def outcomes_between_alarms(checks: float, per_outcome: float, calls_per_check: float) -> float:
    """A band's designed run length under no drift, in outcomes: `checks` outcomes when an outcome takes a check or
    more to resolve (a false alarm holds the band for a few outcomes, so the share of checks in the band stays about
    the same whatever the horizon), `checks` x the outcomes a check resolves when it resolves several (intraday)."""
    return max(checks * max(calls_per_check / max(per_outcome, 1e-9), 1.0), MIN_RUN)


def thresholds(reference: float, per_outcome: float, calls_per_check: float, cfg: Drift) -> dict[Band, float]:
    """Each band's threshold for a champion that resolves `calls_per_check` calls a check (bars a session), of which
    `per_outcome` carry one outcome (`calls_per_outcome`)."""
    return {band: threshold_for(reference, edges(cfg)[band],
                                outcomes_between_alarms(alarm_checks(cfg)[band], per_outcome, calls_per_check))
            for band in ALARM_BANDS}


def outcomes_needed(reference: float, limits: dict[Band, float], cfg: Drift) -> float:
    """Outcomes before the drift band could fire if every call missed: fewer, and nothing can be judged."""
    return limits["drift"] / steps(reference, cfg.drift_below)[1]


def held_reference(reference: float, reference_rows: float, per_outcome: float, confidence: float) -> float:
    """The accuracy the calls are held to: the reference's one-sided lower bound at `confidence`, its rows counted
    as outcomes like the live calls. A reference measured on a few hundred overlapping rows is itself uncertain
    (at 20 sessions, 500 rows are about 25 outcomes: +-10 points); held to its point value, a champion whose
    reference came out high would raise false alarms for its whole reign."""
    p = min(max(float(reference), 0.02), 0.98)
    outcomes = max(float(reference_rows) / max(1.0, per_outcome), 1.0)
    return max(p - _z(confidence) * math.sqrt(p * (1 - p) / outcomes), 0.02)


@lru_cache(maxsize=64)
def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(confidence)


def detect(hits: np.ndarray, reference: float, reference_rows: float, horizon: int, calls_per_check: float,
           cfg: Drift) -> Detection:
    """The band of the resolved calls `hits` (all of them since the champion began serving, time order) of labels
    `horizon` bars ahead, against `reference` measured on `reference_rows` out-of-sample rows."""
    per_outcome = calls_per_outcome(hits, horizon)
    held = held_reference(reference, reference_rows, per_outcome, cfg.band_confidence)
    limits = thresholds(held, per_outcome, calls_per_check, cfg)
    outcomes = len(hits) / per_outcome
    needed = outcomes_needed(held, limits, cfg)
    detectors = tuple(BandDetector(band, edges(cfg)[band], float(cusum(hits, held, edges(cfg)[band],
                                                                       per_outcome)[-1]) if len(hits) else 0.0,
                                   limits[band],
                                   outcomes_between_alarms(alarm_checks(cfg)[band], per_outcome, calls_per_check))
                      for band in ALARM_BANDS)
    if outcomes < needed and not any(d.alarm for d in detectors):
        return Detection(None, outcomes, needed, per_outcome, held, detectors)
    raised = [d.band for d in detectors if d.alarm]
    return Detection(raised[-1] if raised else "normal", outcomes, needed, per_outcome, held, detectors)


def band_path(hits: np.ndarray, reference: float, reference_rows: float, horizon: int, calls_per_check: float,
              cfg: Drift, reset_on: Band | None = "emergency", checks: np.ndarray | None = None) -> list[Band | None]:
    """The band a check would read after each resolved call (`checks`: only after these calls' indices), each one
    `detect` on the calls resolved by then (None: too few outcomes); after a `reset_on` band every statistic starts
    again (an emergency retrains: a new champion, a new record)."""
    hits = np.asarray(hits, bool)
    out: list[Band | None] = [None] * len(hits)
    wanted = np.ones(len(hits), bool) if checks is None else np.isin(np.arange(len(hits)), checks)
    start = 0
    for i in range(len(hits)):
        if not wanted[i]:  # no check reads the record here
            continue
        band = detect(hits[start:i + 1], reference, reference_rows, horizon, calls_per_check, cfg).band
        out[i] = band
        if reset_on is not None and band == reset_on:
            start = i + 1
    return out
