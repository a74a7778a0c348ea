"""The consensus across timeframes: votes weighted by skill above chance, the agreement score, the anchor."""

from __future__ import annotations

import pytest

from market_mlops.monitoring.consensus import Member, combine, member_accuracy


def member(model: str, proba: tuple[float, float, float], accuracy: float, span: int = 7200,
           timeframe: str = "d1") -> Member:
    predicted = ("BEARISH", "NEUTRAL", "BULLISH")[max(range(3), key=lambda i: proba[i])]
    return Member(model, "1", timeframe, 5, span, "2025-11-14T14:30:00+00:00", proba, predicted, accuracy, "realized")


def test_votes_weigh_by_skill_above_chance_and_agreement_is_the_winning_weight():
    d1 = member("SPY-d1", (0.2, 0.3, 0.5), accuracy=0.45)  # skill 0.1167
    h1 = member("SPY-h1", (0.6, 0.3, 0.1), accuracy=0.39, span=360, timeframe="h1")  # skill 0.0567
    call = combine([d1, h1])
    assert call.weights["SPY-d1"] == pytest.approx(0.1167 / 0.1733, abs=1e-3)
    assert call.direction == "BULLISH" and call.agreement == pytest.approx(call.weights["SPY-d1"], abs=1e-4)
    assert sum(call.proba) == pytest.approx(1)
    assert call.anchor.model == "SPY-d1"  # looks furthest ahead: 5 sessions against 6 hours
    # The same votes with the skills swapped: the hourly champion carries the call.
    swapped = combine([member("SPY-d1", d1.proba, 0.39), member("SPY-h1", h1.proba, 0.45, 360, "h1")])
    assert swapped.direction == "BEARISH" and swapped.agreement < 1


def test_a_champion_no_better_than_chance_has_no_say_and_none_better_means_equal_weights():
    good = member("A", (0.1, 0.2, 0.7), accuracy=0.40)
    chance = member("B", (0.9, 0.05, 0.05), accuracy=0.30)
    call = combine([good, chance])
    assert call.weights == {"A": 1.0, "B": 0.0} and call.direction == "BULLISH" and call.agreement == 1.0
    equal = combine([member("A", good.proba, 0.33), member("B", chance.proba, 0.2)])
    assert equal.weights == {"A": 0.5, "B": 0.5} and equal.direction == "BEARISH" and equal.agreement == 0.5


def test_the_vote_is_weighted_by_realized_accuracy_only_once_judged_on_enough_outcomes():
    judged = {"realized_accuracy": 0.48, "holdout_accuracy": 0.41, "outcomes": 30.0}
    assert member_accuracy(judged, 25) == (0.48, "realized")  # type: ignore[arg-type]
    assert member_accuracy({**judged, "outcomes": 5.4}, 25) == (0.41, "reference")  # type: ignore[arg-type]
    assert member_accuracy({**judged, "realized_accuracy": None}, 25) == (0.41, "reference")  # type: ignore[arg-type]


def test_calls_sharing_an_outcome_are_counted_once():
    from market_mlops.monitoring.consensus import calls_per_outcome, judged_outcomes

    assert calls_per_outcome(20, 252) == 20 and calls_per_outcome(5, 252) == 5 and calls_per_outcome(1, 252) == 1
    assert calls_per_outcome(24, 1764) == 24 / 7 and calls_per_outcome(6, 1764) == 1  # h1: 7 bars a session
    assert judged_outcomes({"resolved": 100, "horizon": 24, "calls_per_outcome": 24 / 7}) == 100 / (24 / 7)
    assert judged_outcomes({"resolved": 100, "horizon": 5}) == 20  # a row stored before the spacing was recorded
