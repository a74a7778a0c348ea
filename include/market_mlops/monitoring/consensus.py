"""A consensus per symbol across the champions of its timeframes, built after each drift check.

Only what has shown skill votes. A champion's skill is its log-loss skill over its own better baseline (nats, a
proper score: the gate's measure): on its live record once that holds `training.min_compare_outcomes` outcomes (the
baselines' live evidence against it, `monitoring.shadow.champion_record`), else on its holdout (the gate's
`gate.skill_mean`). A baseline champion does not vote (it knows only the class mix, which every member's baseline
already knows), nor does a model whose skill is not above 0. The votes are the members' newest class probabilities
weighted by skill; the call is the class with the highest weighted probability, its agreement the weight of the
voters calling that class (1 = all agree). Without a voter there is no call ("no member has skill over its
baselines").

The call is resolved like a forecast of its anchor, the voter looking furthest ahead (timeframe x horizon), on that
member's bars and label, and only members that forecast (most of) the anchor's event vote: at least half as far
ahead (`SAME_EVENT`; pooled on random walks, shorter members' votes made the consensus 0.13 nats worse than its
anchor, make bench). Whether the rest helps is measured, not assumed: the consensus's log-loss on its resolved calls is compared with the anchor's
own on the same calls (a betting e-value at `1 - drift.band_confidence`, calls sharing an outcome counted once), and
until the consensus is proven better it is shown as "no consensus edge" beside the anchor's call, not as a call of
its own.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from market_mlops.model.labels import CLASSES
from market_mlops.monitoring.detector import SESSIONS_PER_YEAR

if TYPE_CHECKING:

    from market_mlops.config import PipelineConfig
    from market_mlops.contracts import ConsensusResult, DriftResult

log = logging.getLogger(__name__)

NO_CALL = "NONE"  # the stored direction when no member votes


@dataclass(frozen=True)
class Member:
    """One champion and its vote."""

    model: str
    version: str
    timeframe: str
    horizon: int
    span_minutes: int  # bar minutes x horizon: how far ahead it looks
    ts: str  # the bar its forecast is for (ISO UTC)
    proba: tuple[float, float, float]
    predicted: str
    accuracy: float  # shown beside the vote
    accuracy_from: str  # "realized" or "reference"
    serving: str = "model"  # "model" or "baseline"
    skill: float | None = None  # log-loss skill over its better baseline, nats (None: not measured)
    skill_from: str = ""  # "live" or "holdout"


@dataclass(frozen=True)
class Consensus:
    direction: str  # a class, or NO_CALL
    proba: tuple[float, float, float]
    agreement: float
    weights: dict[str, float]  # model -> its share of the vote
    anchor: Member
    reason: str  # why a member does not vote, or why there is no call


def member_weight(member: Member) -> float:
    """A member's say: its log-loss skill over its better baseline when positive; none for a baseline champion or a
    model without proven-positive skill (pure)."""
    if member.serving == "baseline" or member.skill is None or not math.isfinite(member.skill):
        return 0.0
    return max(0.0, member.skill)


SAME_EVENT = 0.5  # a member forecasts the anchor's event when it looks at least this share as far ahead


def combine(members: list[Member]) -> Consensus:
    """The skill-weighted call of the members that vote (pure): model champions with skill over their baselines
    whose horizon covers at least `SAME_EVENT` of the anchor's (the furthest-looking of them). A 1-session call
    says little about a 20-session move: pooled with it, it made the consensus worse than its anchor (make bench)."""
    skills = np.array([member_weight(m) for m in members])
    if (skills > 0).any():
        furthest = max(m.span_minutes for m, w in zip(members, skills, strict=True) if w > 0)
        skills = np.where([m.span_minutes >= SAME_EVENT * furthest for m in members], skills, 0.0)
    silent = [f"{m.timeframe} h{m.horizon}: " + (
        "a baseline serves" if m.serving == "baseline" else "no skill over its baselines"
        if member_weight(m) <= 0 else "forecasts a shorter event than the anchor's")
        for m, w in zip(members, skills, strict=True) if w <= 0]
    if skills.sum() <= 0:
        anchor = max(members, key=lambda m: (m.span_minutes, m.model))
        return Consensus(NO_CALL, (float("nan"),) * 3, 0.0, {m.model: 0.0 for m in members}, anchor,
                         "no member has skill over its baselines (" + "; ".join(silent) + ")")
    weights = skills / skills.sum()
    proba = weights @ np.array([m.proba for m in members])
    direction = CLASSES[int(np.argmax(proba))]
    agreement = float(sum(w for w, m in zip(weights, members, strict=True) if m.predicted == direction))
    anchor = max((m for m, w in zip(members, weights, strict=True) if w > 0), key=lambda m: (m.span_minutes, m.model))
    return Consensus(direction, (float(proba[0]), float(proba[1]), float(proba[2])), round(agreement, 4),
                     {m.model: round(float(w), 4) for w, m in zip(weights, members, strict=True)}, anchor,
                     "; ".join(silent))


def vote_text(member: dict[str, Any]) -> str:
    """A stored member's say, for pages and the command line: its weight and the skill behind it, or why it has
    none (a baseline serves; its skill over its baselines, live or on the holdout, is not above 0)."""
    skill, source = member.get("skill"), member.get("skill_from") or ""
    measured = f"{source} skill {skill:+.4f} nats".strip() if skill is not None else "skill not measured"
    if member.get("weight", 0) > 0:
        return f"{member['weight']:.2f}: {measured}"
    if member.get("serving") == "baseline":
        return "no vote: a baseline serves"
    return f"no vote: {measured}"


def member_accuracy(result: DriftResult, min_outcomes: float) -> tuple[float, str]:
    """The accuracy shown beside a vote: realized once judged on enough outcomes, else its reference."""
    realized = result.get("realized_accuracy")
    if realized is not None and math.isfinite(realized) and float(result.get("outcomes") or 0) >= min_outcomes:
        return float(realized), "realized"
    return float(result["holdout_accuracy"]), "reference"


def member_skill(result: dict[str, Any], min_outcomes: float) -> tuple[float | None, str]:
    """A champion's log-loss skill over its better baseline: live once its record holds `min_outcomes` outcomes
    (minus the best baseline's live advantage), else the gate's holdout figure; (None, "") for a baseline."""
    if result.get("serving") == "baseline":
        return None, ""
    live = (result.get("live") or {}).get("baselines_over_champion") or {}
    advantages = [e for e in live.values() if e.get("mean") is not None]
    if advantages and min(float(e.get("outcomes") or 0) for e in advantages) >= min_outcomes:
        return -max(float(e["mean"]) for e in advantages), "live"
    holdout = result.get("holdout_skill")
    if holdout is None or not math.isfinite(float(holdout)):
        return None, ""
    return float(holdout), "holdout"


def build_consensus(results: list[DriftResult], interval_end: dt.datetime,
                    cfg: PipelineConfig) -> list[ConsensusResult]:
    """One consensus per symbol of the checked champions, stored in the SQL store's `consensus` table (a rerun of
    the same session replaces its row), with its realized accuracy so far."""
    import pandas as pd

    from market_mlops.monitoring.forecasts import load_forecasts
    from market_mlops.state import store, tables

    by_symbol: dict[str, list[DriftResult]] = {}
    for result in results:
        by_symbol.setdefault(result["symbol"], []).append(result)
    out: list[ConsensusResult] = []
    for symbol, checked in sorted(by_symbol.items()):
        members = []
        for result in sorted(checked, key=lambda r: (r["timeframe"], r["model"])):
            mine = load_forecasts(symbol, result["timeframe"], cfg, model_version=str(result["version"]),
                                  model_name=result["model"])
            mine = mine[mine["ts"] < pd.Timestamp(interval_end)]
            if mine.empty:
                continue
            last = mine.iloc[-1]
            if last["ts"] < pd.Timestamp(result["interval_start"]):  # its bars for the session are missing
                log.warning("consensus %s: %s v%s has no forecast for the session from %s (newest %s): no vote",
                            symbol, result["model"], result["version"], result["interval_start"][:16], last["ts"])
                continue
            accuracy, source = member_accuracy(result, cfg.drift.min_outcomes)
            skill, skill_from = member_skill(dict(result), cfg.training.min_compare_outcomes)
            members.append(Member(result["model"], str(result["version"]), result["timeframe"], int(last["horizon"]),
                                  cfg.spec(result["timeframe"]).minutes * int(last["horizon"]),
                                  last["ts"].isoformat(), (float(last["p_bearish"]), float(last["p_neutral"]),
                                                           float(last["p_bullish"])), str(last["predicted"]),
                                  round(accuracy, 4), source, str(result.get("serving") or "model"),
                                  None if skill is None else round(skill, 5), skill_from))
        if not members:
            continue
        call = combine(members)
        record: dict[str, Any] = {
            "symbol": symbol, "interval_end": interval_end.isoformat(), "direction": call.direction,
            "agreement": call.agreement, "p_bearish": round(call.proba[0], 4), "p_neutral": round(call.proba[1], 4),
            "p_bullish": round(call.proba[2], 4), "anchor": call.anchor.model, "anchor_timeframe": call.anchor.timeframe,
            "anchor_ts": call.anchor.ts, "anchor_predicted": call.anchor.predicted, "horizon": call.anchor.horizon,
            "anchor_proba": list(call.anchor.proba), "reason": call.reason,
            "calls_per_outcome": calls_per_outcome(call.anchor.horizon, cfg.spec(call.anchor.timeframe).bars_per_year),
            "members": [asdict(m) | {"weight": call.weights[m.model]} for m in members],
        }
        record |= consensus_accuracy(symbol, record, interval_end, cfg) if call.direction != NO_CALL else {
            "realized_accuracy": None, "anchor_accuracy": None, "resolved": 0, "edge": None}
        store.upsert(tables.consensus, [{"symbol": symbol, "interval_end": record["interval_end"],
                                         "direction": call.direction, "agreement": call.agreement,
                                         "record": store.finite(record)}], cfg)
        log.info("consensus %s: %s, agreement %.2f of %d champions (weights %s%s); realized %s over %d resolved "
                 "calls (anchor %s alone %s); %s", symbol, call.direction, call.agreement, len(members), call.weights,
                 f"; {call.reason}" if call.reason else "", record["realized_accuracy"], record["resolved"],
                 call.anchor.timeframe, record["anchor_accuracy"], describe_edge(record))
        out.append({"symbol": symbol, "direction": call.direction, "agreement": call.agreement,
                    "members": len(members), "realized_accuracy": record["realized_accuracy"],
                    "anchor_accuracy": record["anchor_accuracy"], "resolved": int(record["resolved"])})
    return out


def consensus_accuracy(symbol: str, latest: dict[str, Any], interval_end: dt.datetime,
                       cfg: PipelineConfig) -> dict[str, Any]:
    """Realized accuracy of the symbol's stored consensus calls with the same anchor as `latest` (and of the anchor
    alone on the same calls), over the last `drift.accuracy_outcomes` x horizon resolved ones."""
    import pandas as pd

    from market_mlops.data.dataset import load_bars
    from market_mlops.data.versioning import head_dataset
    from market_mlops.monitoring.forecasts import resolved_forecasts
    from market_mlops.state import store, tables

    timeframe, horizon = latest["anchor_timeframe"], int(latest["horizon"])
    rows = [r for r in store.records(tables.consensus, cfg, symbol=symbol)
            if r.get("anchor_timeframe") == timeframe and int(r.get("horizon", 0)) == horizon
            and r.get("direction") != NO_CALL]
    rows = [*rows, latest]
    nan3 = [float("nan")] * 3
    calls = pd.DataFrame({"ts": [r["anchor_ts"] for r in rows], "predicted": [r["direction"] for r in rows],
                          "anchor": [r["anchor_predicted"] for r in rows],
                          "proba": [[r.get(f"p_{c.lower()}", float("nan")) for c in CLASSES] for r in rows],
                          "anchor_proba": [r.get("anchor_proba") or nan3 for r in rows]})
    calls["ts"] = pd.to_datetime(calls["ts"], utc=True)
    calls = calls.drop_duplicates("ts", keep="first").sort_values("ts")  # a later call on the same anchor bar
    # (its forecast missing for a newer session) has seen more: the first is the honest one
    since = calls["ts"].min().to_pydatetime() - dt.timedelta(days=cfg.spec(timeframe).warmup_days)
    bars = load_bars(head_dataset(cfg), timeframe, [symbol], until=interval_end, since=since)
    resolved = resolved_forecasts(calls, bars, horizon, cfg.labels_of(symbol, timeframe))
    resolved = resolved.tail(math.ceil(cfg.drift.accuracy_outcomes
                                       * calls_per_outcome(horizon, cfg.spec(timeframe).bars_per_year)))
    if resolved.empty:
        return {"realized_accuracy": None, "anchor_accuracy": None, "resolved": 0, "edge": None}
    per_outcome = calls_per_outcome(horizon, cfg.spec(timeframe).bars_per_year)
    return {"realized_accuracy": round(float(resolved["correct"].mean()), 4),
            "anchor_accuracy": round(float((resolved["anchor"] == resolved["realized"]).mean()), 4),
            "resolved": len(resolved), "edge": consensus_edge(resolved, per_outcome, 1 - cfg.drift.band_confidence)}


def consensus_edge(resolved: Any, per_outcome: float, alpha: float) -> dict[str, Any] | None:
    """The consensus's log-loss skill over its anchor on the resolved calls both have probabilities for (pure):
    mean difference (nats, positive: the consensus is better), its interval, the e-value and whether it is
    proven at `alpha`; None when no call has both."""
    from market_mlops.model.evidence import score_evidence

    mine = np.array(resolved["proba"].tolist(), dtype=float)
    theirs = np.array(resolved["anchor_proba"].tolist(), dtype=float)
    both = np.isfinite(mine).all(axis=1) & np.isfinite(theirs).all(axis=1)
    if not both.any():
        return None
    y = resolved["realized"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy(dtype=int)[both]
    evidence = score_evidence(y, mine[both], theirs[both], max(1, round(per_outcome)), alpha)
    finite = {k: (round(float(v), 5) if math.isfinite(v) else None)
              for k, v in {"mean": evidence.mean, "low": evidence.low, "high": evidence.high,
                           "e_value": evidence.e_value}.items()}
    return {**finite, "outcomes": round(evidence.outcomes, 1), "proven": evidence.proven}


def describe_edge(record: dict[str, Any]) -> str:
    """What the consensus's record says of it: its edge over the anchor proven, or "no consensus edge" (why)."""
    if record.get("direction") == NO_CALL:
        return f"no consensus: {record.get('reason') or 'no member votes'}"
    edge = record.get("edge")
    if not edge or edge.get("mean") is None:
        return "no consensus edge: no call resolved yet"
    text = (f"{edge['mean']:+.4f} nats over the anchor alone on {edge['outcomes']:g} outcomes"
            + (f" [{edge['low']:+.4f}, {edge['high']:+.4f}]" if edge.get("low") is not None
               and edge.get("high") is not None else ""))
    return f"consensus edge proven: {text}" if edge.get("proven") else f"no consensus edge: {text}"


def has_edge(record: dict[str, Any]) -> bool:
    return record.get("direction") != NO_CALL and bool((record.get("edge") or {}).get("proven"))


def calls_per_outcome(horizon: int, bars_per_year: int, sessions_per_year: int = SESSIONS_PER_YEAR) -> float:
    """How many consecutive consensus calls (one per session) share one outcome of the anchor's label: its horizon
    in sessions, at least 1 (d1 at 20: 20 calls; h1 at 24 on a 7-bar stock session: 3.4; h1 at 6: 1)."""
    return max(1.0, horizon / max(bars_per_year / sessions_per_year, 1e-9))


def judged_outcomes(record: dict[str, Any]) -> float:
    """Independent outcomes behind a consensus's realized accuracy: its resolved calls (one per session) over the
    calls that share an outcome (calls a session apart on a 5-session label share most of it)."""
    share = record.get("calls_per_outcome") or max(int(record.get("horizon") or 1), 1)  # rows from before it was kept
    return int(record.get("resolved") or 0) / float(share)


def latest_consensus(cfg: PipelineConfig) -> list[dict[str, Any]]:
    """The newest stored consensus of each symbol (what the Models page and `market-mlops models` show)."""
    from market_mlops.state import store, tables

    newest: dict[str, dict[str, Any]] = {}
    for record in store.records(tables.consensus, cfg, order_by="interval_end"):
        newest[record["symbol"]] = record
    return [newest[s] for s in sorted(newest)]

