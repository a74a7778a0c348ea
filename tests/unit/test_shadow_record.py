"""Live records (`monitoring.shadow`): a no-skill shadow challenger is rarely promoted however often its record is
read; a challenger with a real edge is promoted; a harmful champion model is demoted to the baseline."""

from __future__ import annotations

import numpy as np

from market_mlops.monitoring.shadow import champion_record, describe_live, shadow_record

ALPHA = 1 / 300


def _session_labels(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    hint = rng.standard_normal(n)
    y = np.where(0.6 * hint + rng.standard_normal(n) > 0.45, 2, np.where(0.6 * hint + rng.standard_normal(n) < -0.45,
                                                                          0, 1))
    return y, hint


def _informed(hint: np.ndarray) -> np.ndarray:
    logits = np.column_stack([-0.9 * hint, np.zeros(len(hint)), 0.9 * hint])
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def test_a_no_skill_challenger_is_promoted_at_most_at_the_live_level_reading_after_every_session():
    """500 records of 400 sessions, each read after every session (the e-process's running maximum): the share
    promoted stays under the level plus three standard errors (0.33 % + 0.77 points)."""
    rng = np.random.default_rng(3)
    promoted = 0
    for _ in range(500):
        y = rng.integers(0, 3, 400)
        climatology = np.full((400, 3), 1 / 3)
        champion = climatology
        noisy = rng.dirichlet([40, 40, 40], 400)
        record = shadow_record(y, champion, noisy, {"climatology": climatology}, 1, ALPHA, 30, ("2", "1"), True)
        promoted += record.decision == "promote"
    assert promoted / 500 <= ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / 500)


def test_a_real_edge_is_promoted_and_said_with_its_numbers():
    rng = np.random.default_rng(4)
    y, hint = _session_labels(rng, 400)
    shares = np.bincount(y, minlength=3) / len(y)
    climatology = np.tile(shares, (400, 1))
    record = shadow_record(y, climatology, _informed(hint), {"climatology": climatology, "persistence": climatology},
                           1, ALPHA, 30, ("4", "3"), champion_is_baseline=True)
    assert record.decision == "promote" and record.versus_champion.low > 0
    assert record.reason.startswith("v4 proven better than champion v3 on 400 live sessions: +0.")
    text = describe_live(record.record() and {"shadow": record.record()})
    assert text.startswith("shadow v4: +0.") and text.endswith(": promote")


def test_few_outcomes_judge_nothing_and_overlapping_labels_count_once_per_horizon():
    rng = np.random.default_rng(5)
    y, hint = _session_labels(rng, 100)
    climatology = np.full((100, 3), 1 / 3)
    record = shadow_record(y, climatology, _informed(hint), {"climatology": climatology}, 5, ALPHA, 30, ("2", "1"),
                           True)
    assert record.decision == "too few outcomes" and record.reason.endswith("too few outcomes (20 of 30)")


def test_a_harmful_champion_model_is_demoted_to_the_baseline_proven_better():
    rng = np.random.default_rng(6)
    y, hint = _session_labels(rng, 400)
    shares = np.tile(np.bincount(y, minlength=3) / len(y), (400, 1))
    backwards = _informed(-hint)  # a market that turned against the model
    record = champion_record(y, backwards, {"climatology": shares, "persistence": np.full((400, 3), 1 / 3)}, 1,
                             ALPHA, 30, "5")
    assert record.demote_to == "climatology" and record.reason.startswith("the climatology baseline is proven better")
    sound = champion_record(y, _informed(hint), {"climatology": shares}, 1, ALPHA, 30, "5")
    assert sound.demote_to is None


def test_a_reign_with_several_challengers_chains_their_records_and_holds_its_level():
    """A monthly retrain replaces the challenger: the record of a champion's reign takes each session's newest one,
    its bets starting afresh. A poor first challenger does not hold a good later one down; and with no challenger
    better, 500 reigns of 8 challengers x 50 sessions read after every session stay under the level (5 %)."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 400)
    shares = np.full((400, 3), 1 / 3)
    right, wrong = (0.85 * shares + 0.15 * np.eye(3)[labels] for labels in (y, (y + 1) % 3))  # an oracle's share
    challenger = np.vstack([wrong[:200], right[200:]])  # a challenger that calls it backwards, then one that is right
    segments = np.repeat([3, 4], 200)
    unchained = shadow_record(y, shares, challenger, {"climatology": shares}, 1, ALPHA, 30, ("4", "2"), False)
    chained = shadow_record(y, shares, challenger, {"climatology": shares}, 1, ALPHA, 30, ("4", "2"), False,
                            segments=segments)
    assert chained.decision == "promote"
    # one running estimate over both lets the first challenger's losses hold the second one's bets down
    assert chained.versus_champion.e_value > 10 * unchained.versus_champion.e_value
    promoted = 0
    for _ in range(500):
        y = rng.integers(0, 3, 400)
        uniform = np.full((400, 3), 1 / 3)
        noisy = rng.dirichlet([40, 40, 40], 400)
        record = shadow_record(y, uniform, noisy, {"climatology": uniform}, 1, 0.05, 30, ("9", "1"), False,
                               segments=np.repeat(np.arange(8), 50))
        promoted += record.decision == "promote"
    assert promoted / 500 <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 500)
