"""The drift decisions, as pure functions: which accuracy band a model is in, and whether to retrain it now.

Bands compare realized accuracy of resolved forecasts with the model's holdout accuracy, in accuracy points:
normal above `monitor_below`, monitor down to `drift_below`, drift down to `emergency_below`, emergency below.
With fewer than `min_resolved` resolved forecasts only `normal` is reported (too little evidence).
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


def accuracy_band(delta_points: float, resolved: int, cfg: Drift) -> Band:
    """Band of an accuracy change (realized - holdout, in points) given how many forecasts resolved."""
    if resolved < cfg.min_resolved or not np.isfinite(delta_points):
        return "normal"
    if delta_points >= cfg.monitor_below:
        return "normal"
    if delta_points >= cfg.drift_below:
        return "monitor"
    if delta_points >= cfg.emergency_below:
        return "drift"
    return "emergency"


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
