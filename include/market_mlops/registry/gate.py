"""The promotion decision, as a pure function of numbers (no MLflow): fast to test, the same in every caller.

A new version becomes `champion` only if it beats both naive baselines on its holdout, significantly: the lower end
of the block-bootstrap interval of accuracy(challenger) - accuracy(better baseline) on the same rows is above zero
(a few points on a few hundred rows is a coin flip, not a skill). When a champion exists and has not learned enough
of those rows, the interval of accuracy(challenger) - accuracy(champion) on the rows it has not learned must have its
lower end above -tolerance (not worse beyond the tolerance), or above zero where an improvement is required (the
weekly refresh: same base models, so only a better blend is worth a new version). A served model learned every row up
to its cutoff: on too few rows after it there is nothing fair to compare, and the baselines decide alone (said in the
reason). A champion that is a baseline is replaced by any challenger that beats the baselines. An operator may force a
promotion; the reason says so.

The other way round (`decide_demotion`): a champion model that, on the rows it never learned, is significantly worse
than the better baseline is doing harm, and the baseline takes its place until a model beats it (a market that
turned against the model: serving the baseline is the recovery the gate can vouch for).
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
    block: int = 0  # rows per bootstrap block
    effective_rows: float = 0.0  # rows / horizon


@dataclass(frozen=True)
class Decision:
    outcome: GateOutcome
    reason: str

    @property
    def promote(self) -> bool:
        return self.outcome == "promoted"


def decide_promotion(version: str, accuracy: float, baselines: dict[str, float], champion: str | None,
                     vs_champion: Interval | None, tolerance: float, force: bool = False,
                     vs_baseline: Interval | None = None, required: tuple[str, float] | None = None,
                     champion_not_compared: str | None = None, require_improvement: bool = False,
                     champion_is_baseline: bool = False) -> Decision:
    """Whether `version` (holdout `accuracy`) replaces `champion`; `vs_champion` is None when there is none or it
    could not be compared (`champion_not_compared` says why); `vs_baseline`: the interval of the difference with the
    better baseline (None: point estimates only); `required`: a finance metric (name, holdout value) that must be
    above 0 (`training.gate_requires`); `require_improvement`: beat the champion, not just match it."""
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
    if champion is None:
        return Decision("promoted", "first model that beats both baselines")
    if champion_is_baseline:
        return Decision("promoted", f"beats both baselines: replaces the baseline champion v{champion}")
    if vs_champion is None:
        if require_improvement:
            return Decision("kept as challenger", f"not compared with champion v{champion}: {champion_not_compared}")
        return Decision("promoted", f"beats both baselines; champion v{champion} not compared: {champion_not_compared}")
    if require_improvement and not vs_champion.low > 0:
        return Decision("kept as challenger", f"not significantly better than champion v{champion} "
                        f"({vs_champion.mean:+.3f}, interval [{vs_champion.low:+.3f}, {vs_champion.high:+.3f}])")
    if not vs_champion.low > -tolerance:
        return Decision("kept as challenger", f"worse than champion v{champion} beyond tolerance {tolerance}")
    if require_improvement:
        return Decision("promoted", f"beats both baselines and champion v{champion} ({vs_champion.mean:+.3f}, "
                        f"interval [{vs_champion.low:+.3f}, {vs_champion.high:+.3f}])")
    return Decision("promoted", f"beats both baselines and is not worse than champion v{champion} beyond tolerance")


def decide_demotion(champion: str, vs_baseline: Interval | None, baseline: str, rows: int) -> str | None:
    """Why the better baseline should replace `champion`, or None: the upper end of the interval of
    accuracy(champion) - accuracy(better baseline) on the `rows` it never learned is below zero."""
    if vs_baseline is None or not vs_baseline.high < 0:
        return None
    return (f"champion v{champion} is significantly worse than the {baseline} baseline on the {rows} holdout rows it "
            f"never learned ({vs_baseline.mean:+.3f}, interval [{vs_baseline.low:+.3f}, {vs_baseline.high:+.3f}])")
