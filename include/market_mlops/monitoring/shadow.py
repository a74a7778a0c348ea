"""Live records: how a shadow challenger and a champion fare on the sessions they both forecast, as pure functions.

After a full refit a champion has learned every row before its cutoff, so no holdout row can compare it with a newer
model: the only fair comparison is the sessions after both cutoffs. A challenger that did not pass its retrain's gate
keeps forecasting beside the champion (stored with the role `shadow`, resolved the same way, never served); each
drift check reads the resolved sessions both forecast and runs the betting e-process of `model.evidence` on the paired
score difference (every `horizon`-th session: separate outcomes), which may be read after every session. The
challenger replaces the champion once its better score is proven at the live record's level (`registry.gate.level_of`,
"shadow": two fifths of the yearly budget over 12 challengers a year); over a baseline champion it must beat both
baselines. The same evidence the other way demotes a champion model: a baseline proven better than it on its live
forecasts (each baseline at half the level: either may be the one) replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from market_mlops.model.evidence import Evidence, score_evidence

LiveDecision = Literal["promote", "keep", "too few outcomes"]


def _few(outcomes: float, minimum: float) -> str | None:
    return None if outcomes >= minimum else f"too few outcomes ({outcomes:.0f} of {minimum:g})"


def _summary(evidence: Evidence) -> dict[str, Any]:
    finite = {k: (round(float(v), 6) if np.isfinite(v) else None) for k, v in
              {"mean": evidence.mean, "low": evidence.low, "high": evidence.high, "e_value": evidence.e_value}.items()}
    return {**finite, "threshold": round(evidence.threshold, 1), "outcomes": round(evidence.outcomes, 1),
            "sessions": evidence.rows, "proven": evidence.proven}


@dataclass(frozen=True)
class ShadowRecord:
    """A shadow challenger against the champion on the sessions both forecast (positive: the challenger scores
    better), and against each baseline; what it decides."""

    challenger: str
    champion: str
    versus_champion: Evidence
    versus_baselines: dict[str, Evidence]
    decision: LiveDecision
    reason: str

    def record(self) -> dict[str, Any]:
        return {"challenger": self.challenger, "champion": self.champion, "decision": self.decision,
                "reason": self.reason, "metric": self.versus_champion.metric,
                "versus_champion": _summary(self.versus_champion),
                "versus_baselines": {b: _summary(e) for b, e in self.versus_baselines.items()}}


def shadow_record(y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, baselines: dict[str, np.ndarray],
                  horizon: int, alpha: float, min_outcomes: float, versions: tuple[str, str],
                  champion_is_baseline: bool, metric: str = "log_loss",
                  segments: np.ndarray | None = None) -> ShadowRecord:
    """The live record of the shadow challengers of a champion's reign: `y` the realized labels of the paired
    sessions (time order), `champion` and `challenger` their probabilities (each session's newest challenger:
    `segments` says which, its bets start afresh), `baselines` each baseline's; `versions`: (the challenger of now,
    champion)."""
    def evidence(a: np.ndarray, b: np.ndarray) -> Evidence:
        return score_evidence(y, a, b, horizon, alpha, metric, sequential=True, segments=segments)

    versus_champion = evidence(challenger, champion)
    versus_baselines = {name: evidence(challenger, p) for name, p in baselines.items()}
    challenger_v, champion_v = versions
    thin = _few(versus_champion.outcomes, min_outcomes)
    if thin:
        return ShadowRecord(challenger_v, champion_v, versus_champion, versus_baselines, "too few outcomes",
                            f"v{challenger_v} against champion v{champion_v}: {thin}")
    if not versus_champion.proven:
        return ShadowRecord(challenger_v, champion_v, versus_champion, versus_baselines, "keep",
                            f"v{challenger_v} not proven better than champion v{champion_v} live: "
                            f"{versus_champion.describe()}")
    unproven = [name for name, e in versus_baselines.items() if not e.proven] if champion_is_baseline else []
    if unproven:
        return ShadowRecord(challenger_v, champion_v, versus_champion, versus_baselines, "keep",
                            f"v{challenger_v} beats champion v{champion_v} live but not the {unproven[0]} baseline: "
                            f"{versus_baselines[unproven[0]].describe()}")
    return ShadowRecord(challenger_v, champion_v, versus_champion, versus_baselines, "promote",
                        f"v{challenger_v} proven better than champion v{champion_v} on {versus_champion.rows} live "
                        f"sessions: {versus_champion.describe()}")


@dataclass(frozen=True)
class ChampionRecord:
    """Each baseline against a champion model on its resolved live forecasts (positive: the baseline is better), and
    the baseline to serve instead when one is proven better (`demote_to`)."""

    champion: str
    baselines_over_champion: dict[str, Evidence]
    demote_to: str | None
    reason: str

    def record(self) -> dict[str, Any]:
        return {"champion": self.champion, "demote_to": self.demote_to, "reason": self.reason,
                "baselines_over_champion": {b: _summary(e) for b, e in self.baselines_over_champion.items()}}


def champion_record(y: np.ndarray, champion: np.ndarray, baselines: dict[str, np.ndarray], horizon: int,
                    alpha: float, min_outcomes: float, version: str, metric: str = "log_loss") -> ChampionRecord:
    """Whether a baseline is proven better than the champion model on its live forecasts: each baseline tested at
    alpha / 2 (either may be the one), the strongest evidence decides."""
    over = {name: score_evidence(y, p, champion, horizon, alpha / max(1, len(baselines)), metric, sequential=True)
            for name, p in baselines.items()}
    outcomes = len(y) / max(1, horizon)
    thin = _few(outcomes, min_outcomes)
    if thin:
        return ChampionRecord(version, over, None, f"champion v{version} against the baselines: {thin}")
    proven = sorted((e.e_value, name) for name, e in over.items() if e.proven)
    if not proven:
        return ChampionRecord(version, over, None, f"no baseline proven better than champion v{version} live")
    name = proven[-1][1]
    return ChampionRecord(version, over, name, f"the {name} baseline is proven better than champion v{version} on "
                          f"{over[name].rows} live sessions: {over[name].describe()}")


def describe_live(record: dict[str, Any] | None) -> str:
    """The shadow challenger's live record from a drift check's record: sessions, outcomes, the score difference
    with its interval, the evidence and what it decided."""
    shadow = (record or {}).get("shadow")
    if not shadow:
        return "no shadow challenger"
    versus = shadow.get("versus_champion") or {}

    def signed(value: Any) -> str:
        return "n/a" if value is None else f"{float(value):+.4f}"

    return (f"shadow v{shadow['challenger']}: {signed(versus.get('mean'))} nats [{signed(versus.get('low'))}, "
            f"{signed(versus.get('high'))}] on {versus.get('sessions', 0)} sessions ({versus.get('outcomes', 0):g} "
            f"outcomes), e-value {float(versus.get('e_value') or 1):.3g} of {versus.get('threshold', 0):g}: "
            f"{shadow['decision']}")
