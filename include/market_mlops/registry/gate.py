"""The promotion decision, as a pure function of numbers (no MLflow): fast to test, the same in every caller.

A new version becomes `champion` only if it beats both naive baselines on its holdout, significantly: the lower end
of the block-bootstrap interval of accuracy(challenger) - accuracy(better baseline) on the same rows is above zero
(a few points on a few hundred rows is a coin flip, not a skill). When a champion exists, the interval of
accuracy(challenger) - accuracy(champion) must have its lower end above -tolerance (not worse beyond the
tolerance). An operator may force a promotion; the reason says so.
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
                     vs_champion: Interval | None, tolerance: float, force: bool = False,
                     vs_baseline: Interval | None = None, required: tuple[str, float] | None = None) -> Decision:
    """Whether `version` (holdout `accuracy`) replaces `champion`; `vs_champion` is None when there is none;
    `vs_baseline`: the interval of the difference with the better baseline (None: point estimates only);
    `required`: a finance metric (name, holdout value) that must be above 0 (`training.gate_requires`)."""
    if champion == version:
        return Decision("already champion", f"v{version} is the champion already")
    if force:
        return Decision("promoted", "forced by the operator (force_promotion)")
    beaten_by = [name for name, value in baselines.items() if accuracy <= value]
    if beaten_by:
        return Decision("kept as challenger", f"does not beat the {' and '.join(beaten_by)} baseline")
    if vs_baseline is not None and not vs_baseline.low > 0:
        better = max(baselines, key=lambda name: baselines[name])
        return Decision("kept as challenger", f"not significantly better than the {better} baseline "
                        f"({vs_baseline.mean:+.3f}, interval [{vs_baseline.low:+.3f}, {vs_baseline.high:+.3f}])")
    if required is not None and not required[1] > 0:
        return Decision("kept as challenger", f"its holdout {required[0]} {required[1]:+.3f} is not above 0 "
                        "(training.gate_requires)")
    if champion is not None and vs_champion is not None and not vs_champion.low > -tolerance:
        return Decision("kept as challenger", f"worse than champion v{champion} beyond tolerance {tolerance}")
    if champion is None:
        return Decision("promoted", "first model that beats both baselines")
    return Decision("promoted", f"beats both baselines and is not worse than champion v{champion} beyond tolerance")
