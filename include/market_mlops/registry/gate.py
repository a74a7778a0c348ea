"""The promotion decision, as a pure function of evidence (no MLflow): fast to test, the same in every caller.

A new version becomes `champion` only if its skill over each naive baseline is proven on the same rows: the
challenger's log-loss (`training.gate_metric`; accuracy may be chosen) against climatology's and against
persistence's, each an e-value of the betting test of `model.evidence` that must reach 1 / alpha (beating the better
baseline means beating both: an intersection-union test, each at alpha). Fewer separate outcomes than
`training.min_compare_outcomes` (rows / horizon: overlapping labels share theirs) and nothing is judged: "too few
outcomes", nothing changes.

Alpha is spent so that a challenger with no skill replaces a champion within a champion-year with probability at most
`training.yearly_false_promotions` (10 %): the year's budget is split between the 12 monthly retrains (half), the 12
challengers' live records (`shadow`, two fifths) and the 52 weekly refreshes (a tenth), each test at its share
divided by its count a year (Bonferroni: valid whatever the dependence between retests on overlapping holdouts). A
retrain's holdout test is read once; a live record may be read after every session, which its e-process allows.

When a champion exists and can be scored on enough holdout rows it never learned, the challenger must not be proven
worse than it (or, where an improvement is required, the weekly refresh's same base models, be proven better). A
served model learned every row up to its cutoff: it is then not compared on the holdout, and its shadow challenger's
live record decides (`monitoring.shadow`). A champion that is a baseline is replaced by any challenger that beats the
baselines. An operator may force a promotion; the reason says so.

The other way round (`decide_demotion`): a champion model whose log-loss the better baseline is proven to beat is
doing harm, and the baseline takes its place until a model beats it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from market_mlops.contracts import GateOutcome
from market_mlops.model.evidence import Evidence

TestKind = Literal["retrain", "shadow", "refresh"]
TESTS_PER_YEAR: dict[TestKind, int] = {"retrain": 12, "shadow": 12, "refresh": 52}
BUDGET_SHARE: dict[TestKind, float] = {"retrain": 0.5, "shadow": 0.4, "refresh": 0.1}


def level_of(kind: TestKind, yearly: float) -> float:
    """The alpha of one test of `kind`: its share of the yearly budget over its count a year."""
    return yearly * BUDGET_SHARE[kind] / TESTS_PER_YEAR[kind]


@dataclass(frozen=True)
class Decision:
    outcome: GateOutcome
    reason: str

    @property
    def promote(self) -> bool:
        return self.outcome == "promoted"


def too_few_outcomes(evidence: list[Evidence], minimum: float) -> str | None:
    """Why nothing can be judged: the thinnest comparison holds fewer than `minimum` separate outcomes."""
    thinnest = min((e.outcomes for e in evidence), default=0.0)
    if thinnest >= minimum:
        return None
    return f"too few outcomes to judge: {thinnest:.0f} of the {minimum:g} needed (rows / horizon)"


def decide_promotion(version: str, vs_baselines: dict[str, Evidence], champion: str | None,
                     vs_champion: Evidence | None, min_outcomes: float, force: bool = False,
                     required: tuple[str, float] | None = None, champion_not_compared: str | None = None,
                     require_improvement: bool = False, champion_is_baseline: bool = False,
                     champion_over_challenger: Evidence | None = None) -> Decision:
    """Whether `version` replaces `champion`. `vs_baselines`: evidence that it scores better than each baseline,
    the better one first; `vs_champion`: that it scores better than the champion on holdout rows the champion never
    learned (None: not compared, `champion_not_compared` says why) and `champion_over_challenger` the other way;
    `required`: a finance metric (name, holdout value) that must be above 0 (`training.gate_requires`);
    `require_improvement`: beat the champion, not just not lose to it."""
    if champion == version:
        return Decision("already champion", f"v{version} is the champion already")
    if force:
        return Decision("promoted", "forced by the operator (force_promotion)")
    thin = too_few_outcomes(list(vs_baselines.values()), min_outcomes)
    if thin:
        return Decision("too few outcomes", f"{thin}; nothing changes")
    for name, evidence in vs_baselines.items():
        if not evidence.proven:
            return Decision("kept as challenger", f"skill over the {name} baseline not proven: {evidence.describe()}")
    better = next(iter(vs_baselines))
    proof = f"skill over the {better} baseline {vs_baselines[better].describe()}"
    if required is not None and not required[1] > 0:
        return Decision("kept as challenger", f"its holdout {required[0]} {required[1]:+.3f} is not above 0 "
                        "(training.gate_requires)")
    if champion is None:
        return Decision("promoted", f"first model to beat both baselines: {proof}")
    if champion_is_baseline:
        return Decision("promoted", f"beats both baselines, replaces the baseline champion v{champion}: {proof}")
    if vs_champion is None:
        if require_improvement:
            return Decision("kept as challenger", f"not compared with champion v{champion}: {champion_not_compared}")
        return Decision("promoted", f"beats both baselines ({proof}); champion v{champion} not compared: "
                        f"{champion_not_compared}")
    if require_improvement:
        if not vs_champion.proven:
            return Decision("kept as challenger", f"improvement over champion v{champion} not proven: "
                            f"{vs_champion.describe()}")
        return Decision("promoted", f"beats both baselines and champion v{champion}: {vs_champion.describe()}")
    if champion_over_challenger is not None and champion_over_challenger.proven:
        return Decision("kept as challenger", f"champion v{champion} is proven better: "
                        f"{champion_over_challenger.describe()}")
    return Decision("promoted", f"beats both baselines and is not proven worse than champion v{champion} "
                    f"({vs_champion.describe()})")


def decide_demotion(champion: str, baseline: str, baseline_over_champion: Evidence | None,
                    where: str) -> str | None:
    """Why the `baseline` should replace `champion`, or None: the baseline's better score is proven `where`."""
    if baseline_over_champion is None or not baseline_over_champion.proven:
        return None
    return f"the {baseline} baseline is proven better than champion v{champion} {where}: {baseline_over_champion.describe()}"


def tag_number(tags: dict[str, str], key: str) -> float | None:
    """A finite number from a version's tags, or None (missing, not a number, NaN)."""
    try:
        value = float(tags[key])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) else None


def describe_skill(tags: dict[str, str]) -> str:
    """A version's holdout against the better baseline, from its gate tags: the log-loss skill (nats, with the
    interval at the gate's level) and the accuracy difference beside it; for a baseline, its log-loss and the
    other baseline's."""
    versus = tags.get("gate.baseline_compared", "better")
    if tags.get("kind") == "baseline":
        rule = tags.get("baseline.rule", "")
        own, other = tag_number(tags, f"gate.{rule}_log_loss"), [
            (b, tag_number(tags, f"gate.{b}_log_loss")) for b in ("climatology", "persistence") if b != rule]
        if own is None:
            return ""
        chosen = ("; chosen on its live record, not on this holdout" if tags.get("gate.reason", "").startswith(
            "live record:") else "")
        return f"holdout log-loss {own:.4f}" + "".join(f" ({b} {v:.4f})" for b, v in other if v is not None) + chosen
    mean, low, high = (tag_number(tags, f"gate.skill_{k}") for k in ("mean", "low", "high"))
    if mean is None:
        return ""
    text = f"log-loss skill {mean:+.4f} nats"
    if low is not None and high is not None:
        text += f" [{low:+.4f}, {high:+.4f}]"
    text += f" vs the {versus} baseline"
    diff, dlow, dhigh = (tag_number(tags, f"gate.accuracy_diff_{k}") for k in ("mean", "low", "high"))
    if diff is not None:
        text += f", accuracy {diff * 100:+.1f} pts" + (
            f" [{dlow * 100:+.1f}, {dhigh * 100:+.1f}]" if dlow is not None and dhigh is not None else "")
    calibration = tag_number(tags, "gate.calibration_error")
    if calibration is not None:
        text += f", calibration error {calibration:.3f}"
    return text
