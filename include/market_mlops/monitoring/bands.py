"""The drift decisions, as pure functions: which accuracy band a model is in, and whether to retrain it now.

Bands compare realized accuracy of resolved forecasts with the model's reference accuracy, in accuracy points:
normal above `monitor_below`, monitor down to `drift_below`, drift down to `emergency_below`, emergency below.

A band is judged on evidence, not on a point estimate. Forecasts whose labels look `horizon` bars ahead overlap:
20 resolved 5-bar forecasts are about 4 independent outcomes (Hansen and Hodrick 1980 count overlapping forecasts
this way), and a point estimate on 4 outcomes lands 25 points low by chance one time in 20. So the resolved
forecasts count as `resolved / horizon` outcomes; below `min_outcomes` of them only `normal` is reported; and a
band is raised only when the one-sided Wilson score upper bound (Wilson 1927, via statsmodels' `proportion_confint`)
of realized accuracy at `band_confidence` is below that band's edge: "accuracy is at least this far down, with that
confidence". Under no drift a band at d points below the reference fires at most 1 - `band_confidence` of the time,
and less the further its edge (measured by `make bench`: false alarms per band on no-drift windows).
An emergency triggers one retrain of that model, unless one was triggered within `cooldown_days` (the cooldown).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from market_mlops.config import Drift
from market_mlops.contracts import Band

BANDS: tuple[Band, ...] = ("normal", "monitor", "drift", "emergency")


@dataclass(frozen=True)
class BandCheck:
    """The band and the evidence it was judged on."""

    band: Band
    outcomes: float  # resolved forecasts / horizon: independent outcomes they amount to
    upper: float  # one-sided upper bound of realized accuracy at `band_confidence` (NaN: too few outcomes)
    upper_delta_points: float  # (upper - reference) x 100: the drop the evidence is sure of (NaN: too few)
    reason: str


def effective_outcomes(resolved: int, horizon: int) -> float:
    """Independent outcomes in `resolved` forecasts whose `horizon`-bar labels overlap."""
    return resolved / max(1, horizon)


def accuracy_upper_bound(realized: float, outcomes: float, confidence: float) -> float:
    """One-sided Wilson score upper bound of an accuracy observed on `outcomes` independent outcomes."""
    from statsmodels.stats.proportion import proportion_confint

    _, high = proportion_confint(realized * outcomes, outcomes, alpha=2 * (1 - confidence), method="wilson")
    return float(high)


def band_of_delta(delta_points: float, cfg: Drift) -> Band:
    """The band an accuracy change (in points) falls in, by the configured edges."""
    if delta_points >= cfg.monitor_below:
        return "normal"
    if delta_points >= cfg.drift_below:
        return "monitor"
    if delta_points >= cfg.emergency_below:
        return "drift"
    return "emergency"


def accuracy_band(realized: float, reference: float, resolved: int, horizon: int, cfg: Drift) -> BandCheck:
    """The band of realized accuracy on `resolved` forecasts against `reference`, judged on the upper bound."""
    outcomes = effective_outcomes(resolved, horizon)
    if not np.isfinite(realized) or not np.isfinite(reference):
        return BandCheck("normal", outcomes, float("nan"), float("nan"), "no resolved forecast yet")
    if outcomes < cfg.min_outcomes:
        return BandCheck("normal", outcomes, float("nan"), float("nan"),
                         f"{resolved} resolved forecasts are {outcomes:.1f} outcomes of {horizon} bars: fewer than "
                         f"drift.min_outcomes ({cfg.min_outcomes:g}), too few to judge")
    upper = accuracy_upper_bound(realized, outcomes, cfg.band_confidence)
    delta = (upper - reference) * 100
    band = band_of_delta(delta, cfg)
    return BandCheck(band, outcomes, upper, delta,
                     f"realized {realized:.3f} on {outcomes:.1f} outcomes: at {cfg.band_confidence:.0%} confidence at "
                     f"most {upper:.3f}, {delta:+.1f} points from the reference {reference:.3f}")


@dataclass(frozen=True)
class EmergencyDecision:
    retrain: bool  # trigger an emergency retrain now
    in_cooldown: bool  # an emergency, but one was triggered within the cooldown
    reason: str


def decide_emergency(band: Band, interval_end: dt.datetime, earlier_triggers: Iterable[dt.datetime],
                     cooldown_days: int) -> EmergencyDecision:
    """Retrain on an emergency band, at most once per `cooldown_days` (triggers in (end - cooldown, end] count)."""
    if band != "emergency":
        return EmergencyDecision(False, False, f"band {band}: no retrain")
    window_start = interval_end - dt.timedelta(days=cooldown_days)
    recent = [t for t in earlier_triggers if window_start < t <= interval_end]
    if recent:
        return EmergencyDecision(False, True, f"emergency retrain skipped: one was triggered {max(recent):%Y-%m-%d %H:%M} "
                                               f"UTC, within the {cooldown_days}-day cooldown")
    return EmergencyDecision(True, False, "emergency retrain triggered")
