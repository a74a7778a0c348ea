"""The promotion decision as a pure function of evidence: every branch, without MLflow."""

from __future__ import annotations

import numpy as np
import pytest

from market_mlops.model.evidence import Evidence
from market_mlops.registry.gate import BUDGET_SHARE, TESTS_PER_YEAR, decide_promotion, level_of

MIN = 30


def proven(mean: float = 0.05, outcomes: float = 300) -> Evidence:
    return Evidence(mean, mean - 0.02, mean + 0.02, 1e4, 240, int(outcomes), outcomes)


def unproven(mean: float = 0.01, outcomes: float = 300) -> Evidence:
    return Evidence(mean, mean - 0.03, mean + 0.03, 3.0, 240, int(outcomes), outcomes)


def test_the_first_model_proven_over_both_baselines_is_promoted():
    decision = decide_promotion("1", {"persistence": proven(), "climatology": proven(0.08)}, None, None, MIN)
    assert decision.promote and decision.reason.startswith(
        "first model to beat both baselines: skill over the persistence baseline +0.0500 nats")


@pytest.mark.parametrize("which", ["persistence", "climatology"])
def test_a_model_not_proven_over_either_baseline_stays_challenger(which):
    evidence = {"persistence": proven(), "climatology": proven()}
    evidence[which] = unproven()
    decision = decide_promotion("2", evidence, None, None, MIN)
    assert decision.outcome == "kept as challenger"
    assert decision.reason.startswith(f"skill over the {which} baseline not proven: +0.0100 nats")


def test_too_few_outcomes_judge_nothing_whatever_the_evidence():
    thin = {"persistence": proven(outcomes=20), "climatology": proven(outcomes=20)}
    decision = decide_promotion("1", thin, None, None, MIN)
    assert decision.outcome == "too few outcomes" and not decision.promote
    assert decision.reason == "too few outcomes to judge: 20 of the 30 needed (rows / horizon); nothing changes"


def test_against_a_champion_the_challenger_must_not_be_proven_worse():
    both = {"persistence": proven(), "climatology": proven()}
    kept = decide_promotion("3", both, "2", unproven(-0.02), MIN, champion_over_challenger=proven(0.02))
    assert kept.outcome == "kept as challenger" and kept.reason.startswith("champion v2 is proven better")
    won = decide_promotion("3", both, "2", unproven(-0.01), MIN, champion_over_challenger=unproven(0.01))
    assert won.promote and "not proven worse than champion v2" in won.reason


def test_a_refresh_must_prove_an_improvement_over_the_champion():
    both = {"persistence": proven(), "climatology": proven()}
    assert not decide_promotion("5", both, "4", unproven(), MIN, require_improvement=True).promote
    assert decide_promotion("5", both, "4", proven(), MIN, require_improvement=True).promote
    not_compared = decide_promotion("5", both, "4", None, MIN, champion_not_compared="no unseen rows",
                                    require_improvement=True)
    assert not not_compared.promote and not_compared.reason == "not compared with champion v4: no unseen rows"


def test_a_champion_that_cannot_be_compared_is_replaced_by_a_challenger_proven_over_the_baselines():
    both = {"persistence": proven(), "climatology": proven()}
    decision = decide_promotion("3", both, "2", None, MIN, champion_not_compared="it learned every holdout row")
    assert decision.promote and decision.reason.endswith("champion v2 not compared: it learned every holdout row")
    baseline = decide_promotion("3", both, "2", None, MIN, champion_is_baseline=True)
    assert baseline.promote and baseline.reason.startswith("beats both baselines, replaces the baseline champion v2")


def test_force_promotes_whatever_the_numbers_and_says_so():
    decision = decide_promotion("4", {"persistence": unproven(outcomes=1)}, "2", None, MIN, force=True)
    assert decision.promote and "forced by the operator" in decision.reason


def test_the_champion_itself_is_already_champion_even_when_forced():
    assert decide_promotion("2", {"persistence": proven()}, "2", None, MIN, force=True).outcome == "already champion"


@pytest.mark.parametrize(("value", "promoted"), [(0.03, True), (0.0, False), (-0.02, False), (float("nan"), False)])
def test_the_gate_can_require_a_finance_metric_above_zero(value, promoted):
    decision = decide_promotion("1", {"persistence": proven(), "climatology": proven()}, None, None, MIN,
                                required=("ic", value))
    assert decision.promote is promoted
    assert ("holdout ic" in decision.reason) is (not promoted)


def test_the_yearly_budget_is_spent_across_retrains_live_records_and_refreshes():
    yearly = 0.10
    assert sum(BUDGET_SHARE.values()) == pytest.approx(1.0)
    spent = sum(level_of(kind, yearly) * TESTS_PER_YEAR[kind] for kind in TESTS_PER_YEAR)
    assert spent == pytest.approx(yearly)  # a champion-year's tests together: at most the yearly level
    assert 1 / level_of("retrain", yearly) == pytest.approx(240)


def test_a_champion_proven_worse_than_the_better_baseline_is_replaced_by_it():
    from market_mlops.registry.gate import decide_demotion

    assert decide_demotion("4", "persistence", proven(0.12), "on 300 rows").startswith(
        "the persistence baseline is proven better than champion v4 on 300 rows: +0.1200 nats")
    assert decide_demotion("4", "persistence", unproven(0.05), "on 300 rows") is None  # could be luck
    assert decide_demotion("4", "persistence", None, "") is None


def test_the_block_grows_with_the_dependence_in_the_data():
    """Politis-White sees autocorrelation beyond the overlap: a difference in correctness that persists for ~40 rows
    gets blocks longer than 2 x horizon; white noise gets the 2 x horizon floor."""
    import numpy as np

    from market_mlops.model.evaluation import gate_block_length

    rng = np.random.default_rng(5)
    noise = rng.choice([-1.0, 0.0, 1.0], 600)
    persistent = np.repeat(rng.choice([-1.0, 0.0, 1.0], 15), 40)
    assert gate_block_length(noise, horizon=5) == 10
    assert gate_block_length(persistent, horizon=5) > 20


def test_the_drift_reference_pools_folds_and_holdout_so_a_lucky_holdout_is_not_the_bar():
    from market_mlops.model.training import reference_accuracy

    # Promoted on a lucky 0.58 holdout of 300 rows; 900 fold rows say 0.50: live accuracy is held to 0.52.
    assert reference_accuracy(0.50, 900, 0.58, 300) == pytest.approx(0.52)
    assert reference_accuracy(float("nan"), 0, 0.58, 300) == 0.58  # no folds recorded (an older version)


def test_finance_metrics_read_the_score_against_the_returns():
    import numpy as np

    from market_mlops.model.evaluation import finance_metrics

    rng = np.random.default_rng(3)
    forward = rng.normal(0, 0.01, 500)
    informed = np.column_stack([(forward < 0) * 0.6 + 0.2, np.full(500, 0.2), (forward > 0) * 0.6 + 0.2])
    noise = rng.dirichlet([2, 2, 2], 500)
    good, blind = (finance_metrics(p, forward, forward, 252) for p in (informed, noise))
    assert good["ic"] > 0.5 and good["rank_ic"] > 0.5 and abs(blind["ic"]) < 0.15
    assert good["long_short_sharpe"] > 5 > blind["long_short_sharpe"] and good["long_short_max_drawdown"] < 0.05
    assert 0 < good["turnover"] <= 2 and good["long_short_return"] > blind["long_short_return"]
    flat = finance_metrics(np.tile([0.1, 0.8, 0.1], (500, 1)), forward, forward, 252)
    assert np.isnan(flat["ic"]) and flat["turnover"] == 0 and flat["long_short_return"] == 0


def test_a_champion_is_compared_only_on_rows_it_never_learned_less_the_overlap():
    import pandas as pd

    from market_mlops.tasks.promotion import unseen_rows

    stamps = pd.Series(pd.date_range("2025-01-01", periods=20, freq="D", tz="UTC"))
    mask = unseen_rows(stamps, pd.Timestamp("2025-01-10"), horizon=3)
    # Rows after 10 January are 11..20 January; the first 3 share bars of their future with the last learned labels.
    assert list(stamps[mask].dt.day) == list(range(14, 21))
    assert unseen_rows(stamps, None, 3).all()
    assert not unseen_rows(stamps, pd.Timestamp("2025-01-30", tz="UTC"), 3).any()


def _gate(champion, baselines, y, proba):
    from market_mlops.config import load_config
    from market_mlops.model.evaluation import evaluate_with_baselines
    from market_mlops.tasks.promotion import gate_decision

    cfg = load_config(environ={})
    zero = np.zeros(len(y))
    evaluation = evaluate_with_baselines(y, proba, baselines, zero, zero)
    return gate_decision(None, y, proba, evaluation, baselines, 1, champion, False, cfg)


def _forecasts(y: np.ndarray, right: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities putting 0.6 on the observed class with probability `right`, else on another one."""
    call = np.where(rng.random(len(y)) < right, y, (y + rng.integers(1, 3, len(y))) % 3)
    return np.eye(3)[call] * 0.45 + 0.15


def test_the_gate_compares_a_champion_on_its_unseen_rows_and_falls_back_to_the_baseline_when_it_is_worse():
    from market_mlops.tasks.promotion import ChampionOnHoldout

    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 600)
    persistence = _forecasts(y, 0.6, rng)
    baselines = {"climatology": np.full((600, 3), 1 / 3), "persistence": persistence}
    weak = _forecasts(y, 0.5, rng)  # not better than persistence: not promoted
    unseen = np.arange(600) >= 100
    broken = ChampionOnHoldout("3", unseen, _forecasts(y[unseen], 0.2, rng), 1)
    gate = _gate(broken, baselines, y, weak)
    assert not gate.decision.promote and gate.demote.startswith(
        "the persistence baseline is proven better than champion v3 on the 500 holdout rows it never learned")
    sound = ChampionOnHoldout("3", unseen, _forecasts(y[unseen], 0.6, rng), 1)
    assert _gate(sound, baselines, y, weak).demote is None
    # A challenger proven over the baselines, against a champion it cannot be compared with: the baselines decide.
    strong = _forecasts(y, 0.85, rng)
    unfair = ChampionOnHoldout("3", np.zeros(600, dtype=bool), None, 1, note="it learned all but 0 of the 600 rows")
    decided = _gate(unfair, baselines, y, strong)
    assert decided.decision.promote and decided.decision.reason.endswith(
        "champion v3 not compared: it learned all but 0 of the 600 rows")
    assert decided.summary["baseline_compared"] == "persistence" and decided.summary["outcomes"] == 600
    baseline_champion = ChampionOnHoldout("2", np.ones(600, dtype=bool), persistence, 1, is_baseline=True,
                                          rule="persistence")
    assert _gate(baseline_champion, baselines, y, strong).decision.reason.startswith(
        "beats both baselines, replaces the baseline champion v2")
