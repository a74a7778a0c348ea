"""A consensus per symbol across the champions of its timeframes, built after each drift check.

Each champion's newest forecast for the session is one vote: its class probabilities weighted by its skill, the
accuracy above chance (1/3: the volatility band keeps the three classes near a third each) it has shown: its realized
accuracy once the check judged enough outcomes (`drift.min_outcomes`), else its out-of-sample reference accuracy. A
champion no better than chance gets no weight (all of them none: equal weights). The consensus is the class with the
highest weighted probability; its agreement score is the weight of the champions that call that class (1 = all
agree). It is resolved like a forecast of its anchor, the member looking furthest ahead (timeframe x horizon), on
that member's bars and label, and its realized accuracy is tracked beside the anchor's own on the same calls.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from market_mlops.model.labels import CLASSES

if TYPE_CHECKING:

    from market_mlops.config import PipelineConfig
    from market_mlops.contracts import ConsensusResult, DriftResult

log = logging.getLogger(__name__)

CHANCE = 1 / 3


@dataclass(frozen=True)
class Member:
    """One champion's vote."""

    model: str
    version: str
    timeframe: str
    horizon: int
    span_minutes: int  # bar minutes x horizon: how far ahead it looks
    ts: str  # the bar its forecast is for (ISO UTC)
    proba: tuple[float, float, float]
    predicted: str
    accuracy: float
    accuracy_from: str  # "realized" or "reference"


@dataclass(frozen=True)
class Consensus:
    direction: str
    proba: tuple[float, float, float]
    agreement: float
    weights: dict[str, float]  # model -> its share of the vote
    anchor: Member


def member_skill(accuracy: float) -> float:
    """Accuracy above chance, never negative (pure)."""
    return max(0.0, accuracy - CHANCE) if math.isfinite(accuracy) else 0.0


def combine(members: list[Member]) -> Consensus:
    """The weighted call of the members (pure)."""
    skills = np.array([member_skill(m.accuracy) for m in members])
    weights = skills / skills.sum() if skills.sum() > 0 else np.full(len(members), 1 / len(members))
    proba = weights @ np.array([m.proba for m in members])
    direction = CLASSES[int(np.argmax(proba))]
    agreement = float(sum(w for w, m in zip(weights, members, strict=True) if m.predicted == direction))
    anchor = max(members, key=lambda m: (m.span_minutes, m.model))
    return Consensus(direction, (float(proba[0]), float(proba[1]), float(proba[2])), round(agreement, 4),
                     {m.model: round(float(w), 4) for w, m in zip(weights, members, strict=True)}, anchor)


def member_accuracy(result: DriftResult, min_outcomes: float) -> tuple[float, str]:
    """The accuracy a champion's vote is weighted by: realized once judged on enough outcomes, else its reference."""
    realized = result.get("realized_accuracy")
    if realized is not None and math.isfinite(realized) and float(result.get("outcomes") or 0) >= min_outcomes:
        return float(realized), "realized"
    return float(result["holdout_accuracy"]), "reference"


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
            members.append(Member(result["model"], str(result["version"]), result["timeframe"], int(last["horizon"]),
                                  cfg.spec(result["timeframe"]).minutes * int(last["horizon"]),
                                  last["ts"].isoformat(), (float(last["p_bearish"]), float(last["p_neutral"]),
                                                           float(last["p_bullish"])), str(last["predicted"]),
                                  round(accuracy, 4), source))
        if not members:
            continue
        call = combine(members)
        record: dict[str, Any] = {
            "symbol": symbol, "interval_end": interval_end.isoformat(), "direction": call.direction,
            "agreement": call.agreement, "p_bearish": round(call.proba[0], 4), "p_neutral": round(call.proba[1], 4),
            "p_bullish": round(call.proba[2], 4), "anchor": call.anchor.model, "anchor_timeframe": call.anchor.timeframe,
            "anchor_ts": call.anchor.ts, "anchor_predicted": call.anchor.predicted, "horizon": call.anchor.horizon,
            "calls_per_outcome": calls_per_outcome(call.anchor.horizon, cfg.spec(call.anchor.timeframe).bars_per_year),
            "members": [asdict(m) | {"weight": call.weights[m.model]} for m in members],
        }
        record |= consensus_accuracy(symbol, record, interval_end, cfg)
        store.upsert(tables.consensus, [{"symbol": symbol, "interval_end": record["interval_end"],
                                         "direction": call.direction, "agreement": call.agreement,
                                         "record": store.finite(record)}], cfg)
        log.info("consensus %s: %s, agreement %.2f of %d champions (weights %s); realized %s over %d resolved calls "
                 "(anchor %s alone %s)", symbol, call.direction, call.agreement, len(members), call.weights,
                 record["realized_accuracy"], record["resolved"], call.anchor.timeframe, record["anchor_accuracy"])
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
            if r.get("anchor_timeframe") == timeframe and int(r.get("horizon", 0)) == horizon]
    calls = pd.DataFrame({"ts": [r["anchor_ts"] for r in rows] + [latest["anchor_ts"]],
                          "predicted": [r["direction"] for r in rows] + [latest["direction"]],
                          "anchor": [r["anchor_predicted"] for r in rows] + [latest["anchor_predicted"]]})
    calls["ts"] = pd.to_datetime(calls["ts"], utc=True)
    calls = calls.drop_duplicates("ts", keep="first").sort_values("ts")  # a later call on the same anchor bar
    # (its forecast missing for a newer session) has seen more: the first is the honest one
    since = calls["ts"].min().to_pydatetime() - dt.timedelta(days=cfg.spec(timeframe).warmup_days)
    bars = load_bars(head_dataset(cfg), timeframe, [symbol], until=interval_end, since=since)
    resolved = resolved_forecasts(calls, bars, horizon, cfg.labels_of(symbol, timeframe))
    resolved = resolved.tail(math.ceil(cfg.drift.accuracy_outcomes
                                       * calls_per_outcome(horizon, cfg.spec(timeframe).bars_per_year)))
    if resolved.empty:
        return {"realized_accuracy": None, "anchor_accuracy": None, "resolved": 0}
    return {"realized_accuracy": round(float(resolved["correct"].mean()), 4),
            "anchor_accuracy": round(float((resolved["anchor"] == resolved["realized"]).mean()), 4),
            "resolved": len(resolved)}


def calls_per_outcome(horizon: int, bars_per_year: int, sessions_per_year: int = 252) -> float:
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

