"""The consensus across timeframes: votes weighted by log-loss skill over each champion's own baselines (baselines
and models without skill do not vote), the agreement score, the anchor, and a call shown only where its record
beats its anchor's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market_mlops.monitoring.consensus import (
    NO_CALL,
    Member,
    combine,
    consensus_edge,
    describe_edge,
    has_edge,
    member_accuracy,
    member_skill,
)


def member(model: str, proba: tuple[float, float, float], skill: float | None, span: int = 7200,
           timeframe: str = "d1", serving: str = "model") -> Member:
    predicted = ("BEARISH", "NEUTRAL", "BULLISH")[max(range(3), key=lambda i: proba[i])]
    return Member(model, "1", timeframe, 5, span, "2025-11-14T14:30:00+00:00", proba, predicted, 0.4, "reference",
                  serving, skill, "holdout")


def test_votes_weigh_by_skill_over_their_baselines_and_agreement_is_the_winning_weight():
    d1 = member("SPY-d1", (0.2, 0.3, 0.5), skill=0.03)  # 5 sessions: 7,200 minutes
    h1 = member("SPY-h1", (0.6, 0.3, 0.1), skill=0.01, span=4_800, timeframe="h1")  # 80 hours: the same event, mostly
    call = combine([d1, h1])
    assert call.weights == {"SPY-d1": 0.75, "SPY-h1": 0.25}
    assert call.direction == "BULLISH" and call.agreement == 0.75 and sum(call.proba) == pytest.approx(1)
    assert call.anchor.model == "SPY-d1"  # looks furthest ahead
    swapped = combine([member("SPY-d1", d1.proba, 0.01), member("SPY-h1", h1.proba, 0.03, 4_800, "h1")])
    assert swapped.direction == "BEARISH" and swapped.agreement == 0.75


def test_a_member_forecasting_a_much_shorter_event_than_the_anchor_does_not_vote():
    """A 6-hour call says little about a 5-session move: pooled with it, the consensus was worse than its anchor."""
    d1 = member("SPY-d1", (0.2, 0.3, 0.5), skill=0.01)
    h1 = member("SPY-h1", (0.6, 0.3, 0.1), skill=0.05, span=360, timeframe="h1")
    call = combine([d1, h1])
    assert call.weights == {"SPY-d1": 1.0, "SPY-h1": 0.0} and call.direction == "BULLISH"
    assert "h1 h5: forecasts a shorter event than the anchor's" in call.reason


def test_baselines_and_models_without_skill_do_not_vote_and_without_a_voter_there_is_no_call():
    good = member("A", (0.1, 0.2, 0.7), skill=0.02, span=4_000)
    baseline = member("B", (0.9, 0.05, 0.05), skill=None, serving="baseline")  # looks further ahead: not the anchor
    unskilled = member("C", (0.05, 0.9, 0.05), skill=-0.01)
    call = combine([good, baseline, unskilled])
    assert call.weights == {"A": 1.0, "B": 0.0, "C": 0.0} and call.direction == "BULLISH" and call.agreement == 1.0
    assert call.anchor.model == "A" and "d1 h5: a baseline serves" in call.reason and "no skill" in call.reason
    silent = combine([baseline, unskilled])
    assert silent.direction == NO_CALL and silent.agreement == 0 and silent.reason.startswith("no member has skill")


def test_a_members_skill_is_live_once_its_record_holds_enough_outcomes_else_the_gates():
    result = {"serving": "model", "holdout_skill": 0.02, "live": {"baselines_over_champion": {
        "climatology": {"mean": -0.01, "outcomes": 40.0}, "persistence": {"mean": 0.005, "outcomes": 40.0}}}}
    assert member_skill(result, 30) == (-0.005, "live")  # the better baseline's live advantage
    assert member_skill(result, 50) == (0.02, "holdout")
    assert member_skill({"serving": "baseline", "holdout_skill": None}, 30) == (None, "")
    judged = {"realized_accuracy": 0.48, "holdout_accuracy": 0.41, "outcomes": 30.0}
    assert member_accuracy(judged, 25) == (0.48, "realized")  # type: ignore[arg-type]
    assert member_accuracy({**judged, "outcomes": 5.4}, 25) == (0.41, "reference")  # type: ignore[arg-type]


def test_the_call_is_shown_only_once_its_log_loss_beats_its_anchors_on_the_same_calls():
    rng = np.random.default_rng(4)
    n = 400
    y = rng.integers(0, 3, n)
    sharp = np.full((n, 3), 0.15)
    sharp[np.arange(n), y] = 0.7  # right with 0.7 every time
    flat = np.full((n, 3), 1 / 3)
    classes = np.array(["BEARISH", "NEUTRAL", "BULLISH"])
    resolved = pd.DataFrame({"realized": classes[y], "proba": list(sharp), "anchor_proba": list(flat)})
    edge = consensus_edge(resolved, 1.0, 0.2)
    assert edge is not None and edge["proven"] and edge["mean"] > 0.3
    record = {"direction": "BULLISH", "edge": edge}
    assert has_edge(record) and describe_edge(record).startswith("consensus edge proven: +0.")
    worse = consensus_edge(resolved.assign(proba=list(flat), anchor_proba=list(sharp)), 1.0, 0.2)
    assert worse is not None and not worse["proven"]
    assert not has_edge({"direction": "BULLISH", "edge": worse})
    assert describe_edge({"direction": "BULLISH", "edge": worse}).startswith("no consensus edge: -0.")
    assert describe_edge({"direction": NO_CALL, "reason": "no member has skill"}) == "no consensus: no member has skill"


def test_calls_sharing_an_outcome_are_counted_once():
    from market_mlops.monitoring.consensus import calls_per_outcome, judged_outcomes

    assert calls_per_outcome(20, 252) == 20 and calls_per_outcome(5, 252) == 5 and calls_per_outcome(1, 252) == 1
    assert calls_per_outcome(24, 1764) == 24 / 7 and calls_per_outcome(6, 1764) == 1  # h1: 7 bars a session
    assert judged_outcomes({"resolved": 100, "horizon": 24, "calls_per_outcome": 24 / 7}) == 100 / (24 / 7)
    assert judged_outcomes({"resolved": 100, "horizon": 5}) == 20  # a row stored before the spacing was recorded
