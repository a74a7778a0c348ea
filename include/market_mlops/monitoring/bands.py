"""The drift decisions around the bands, as pure functions: the interval shown beside a realized accuracy, and
whether an emergency retrains now.

The bands themselves are decided by `detector.py` (a CUSUM per band). The realized accuracy of the last
`accuracy_outcomes` outcomes is shown with its one-sided Wilson score upper bound (Wilson 1927, via statsmodels'
`proportion_confint`) at `band_confidence`: "accuracy is at least this far down, with that confidence".
An emergency triggers one retrain of that model, unless one was triggered within `cooldown_days` (the cooldown).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from market_mlops.contracts import Band

BANDS: tuple[Band, ...] = ("normal", "monitor", "drift", "emergency")


def accuracy_upper_bound(realized: float, outcomes: float, confidence: float) -> float:
    """One-sided Wilson score upper bound of an accuracy observed on `outcomes` independent outcomes."""
    from statsmodels.stats.proportion import proportion_confint

    _, high = proportion_confint(realized * outcomes, outcomes, alpha=2 * (1 - confidence), method="wilson")
    return float(high)


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
