"""The promotion decision, as a pure function of numbers (no MLflow): fast to test, the same in every caller.

A new version becomes `champion` only if it beats both naive baselines on its holdout and, when a champion exists,
the bootstrap interval of accuracy(challenger) - accuracy(champion) on the same rows has its lower end above
-tolerance (not worse beyond the tolerance). An operator may force a promotion; the reason says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from market_mlops.contracts import GateOutcome


@dataclass(frozen=True)
class Interval:
    """Mean and confidence interval of a difference of accuracies."""

    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class Decision:
    outcome: GateOutcome
    reason: str

    @property
    def promote(self) -> bool:
        return self.outcome == "promoted"


def decide_promotion(version: str, accuracy: float, baselines: dict[str, float], champion: str | None,
                     vs_champion: Interval | None, tolerance: float, force: bool = False) -> Decision:
    """Whether `version` (holdout `accuracy`) replaces `champion`; `vs_champion` is None when there is none."""
    if champion == version:
        return Decision("already champion", f"v{version} is the champion already")
    if force:
        return Decision("promoted", "forced by the operator (force_promotion)")
    beaten_by = [name for name, value in baselines.items() if accuracy <= value]
    if beaten_by:
        return Decision("kept as challenger", f"does not beat the {' and '.join(beaten_by)} baseline")
    if champion is not None and vs_champion is not None and not vs_champion.low > -tolerance:
        return Decision("kept as challenger", f"worse than champion v{champion} beyond tolerance {tolerance}")
    if champion is None:
        return Decision("promoted", "first model that beats both baselines")
    return Decision("promoted", f"beats both baselines and is not worse than champion v{champion} beyond tolerance")
