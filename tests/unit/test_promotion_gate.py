"""The promotion decision as a pure function: every branch, without MLflow."""

from __future__ import annotations

import pytest

from market_mlops.registry.gate import Interval, decide_promotion

BASELINES = {"majority": 0.45, "persistence": 0.40}


def test_the_first_model_that_beats_both_baselines_is_promoted():
    decision = decide_promotion("1", 0.50, BASELINES, None, None, tolerance=0.02)
    assert decision.promote and decision.reason == "first model that beats both baselines"


@pytest.mark.parametrize(("accuracy", "beaten_by"), [
    (0.45, "majority"),                # a tie is not a win
    (0.42, "majority"),
    (0.39, "majority and persistence"),
])
def test_a_model_that_does_not_beat_a_baseline_stays_challenger(accuracy, beaten_by):
    decision = decide_promotion("2", accuracy, BASELINES, None, None, tolerance=0.02)
    assert decision.outcome == "kept as challenger" and decision.reason == f"does not beat the {beaten_by} baseline"


@pytest.mark.parametrize(("low", "promoted"), [(0.01, True), (-0.019, True), (-0.02, False), (-0.10, False)])
def test_against_a_champion_the_interval_low_end_must_stay_above_minus_tolerance(low, promoted):
    decision = decide_promotion("3", 0.55, BASELINES, "2", Interval(mean=low + 0.03, low=low, high=low + 0.06),
                                tolerance=0.02)
    assert decision.promote is promoted
    assert ("not worse than champion v2" in decision.reason) is promoted
    assert ("worse than champion v2 beyond tolerance 0.02" == decision.reason) is (not promoted)


def test_baselines_are_checked_before_the_champion():
    decision = decide_promotion("3", 0.44, BASELINES, "2", Interval(0.1, 0.05, 0.15), tolerance=0.02)
    assert decision.outcome == "kept as challenger" and "majority" in decision.reason


def test_force_promotes_whatever_the_numbers_and_says_so():
    decision = decide_promotion("4", 0.10, BASELINES, "2", Interval(-0.5, -0.6, -0.4), tolerance=0.02, force=True)
    assert decision.promote and "forced by the operator" in decision.reason


def test_the_champion_itself_is_already_champion_even_when_forced():
    assert decide_promotion("2", 0.9, BASELINES, "2", None, tolerance=0.02, force=True).outcome == "already champion"


@pytest.mark.parametrize(("low", "promoted"), [(0.004, True), (0.0, False), (-0.03, False)])
def test_beating_the_baselines_must_be_significant(low, promoted):
    """0.5055 against a majority baseline of 0.4890 on 362 rows is a coin flip: the interval's low end decides."""
    decision = decide_promotion("1", 0.5055, {"majority": 0.4890, "persistence": 0.40}, None, None, tolerance=0.02,
                                vs_baseline=Interval(mean=0.0165, low=low, high=0.06))
    assert decision.promote is promoted
    if not promoted:
        assert decision.reason.startswith("not significantly better than the majority baseline (+0.017, interval [")


def test_the_bootstrap_interval_of_a_small_edge_on_few_rows_spans_zero_and_of_a_real_one_does_not():
    import numpy as np

    from market_mlops.model.evaluation import bootstrap_accuracy_difference

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 362)

    def right_on(count: int) -> np.ndarray:  # exactly `count` rows right, which ones at random
        pred = (y + 1) % 3
        hits = rng.choice(362, count, replace=False)
        pred[hits] = y[hits]
        return pred

    baseline, lucky, skilled = right_on(177), right_on(183), right_on(225)  # 0.489, 0.5055, 0.622
    assert bootstrap_accuracy_difference(y, lucky, baseline, 500, 1, horizon=5).low < 0
    assert bootstrap_accuracy_difference(y, skilled, baseline, 500, 1, horizon=5).low > 0
    wide = bootstrap_accuracy_difference(y, lucky, baseline, 500, 1, horizon=5, confidence=0.99)
    narrow = bootstrap_accuracy_difference(y, lucky, baseline, 500, 1, horizon=5, confidence=0.80)
    assert wide.low < narrow.low < narrow.high < wide.high
    assert narrow.block >= 10 and narrow.effective_rows == pytest.approx(362 / 5)  # at least 2 x horizon


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


@pytest.mark.parametrize(("value", "promoted"), [(0.03, True), (0.0, False), (-0.02, False), (float("nan"), False)])
def test_the_gate_can_require_a_finance_metric_above_zero(value, promoted):
    decision = decide_promotion("1", 0.60, BASELINES, None, None, tolerance=0.02,
                                vs_baseline=Interval(0.15, 0.1, 0.2), required=("ic", value))
    assert decision.promote is promoted
    assert ("holdout ic" in decision.reason) is (not promoted)


def test_a_champion_is_compared_only_on_rows_it_never_learned_less_the_overlap():
    import pandas as pd

    from market_mlops.tasks.promotion import unseen_rows

    stamps = pd.Series(pd.date_range("2025-01-01", periods=20, freq="D", tz="UTC"))
    mask = unseen_rows(stamps, pd.Timestamp("2025-01-10"), horizon=3)
    # Rows after 10 January are 11..20 January; the first 3 share bars of their future with the last learned labels.
    assert list(stamps[mask].dt.day) == list(range(14, 21))
    assert unseen_rows(stamps, None, 3).all()
    assert not unseen_rows(stamps, pd.Timestamp("2025-01-30", tz="UTC"), 3).any()


def test_a_champion_significantly_worse_than_the_better_baseline_is_replaced_by_it():
    from market_mlops.registry.gate import decide_demotion

    assert decide_demotion("4", Interval(-0.12, -0.2, -0.04), "persistence", 300).startswith(
        "champion v4 is significantly worse than the persistence baseline on the 300 holdout rows it never learned")
    assert decide_demotion("4", Interval(-0.05, -0.12, 0.01), "persistence", 300) is None  # could be luck
    assert decide_demotion("4", None, "persistence", 0) is None


def test_the_weekly_refresh_spends_its_error_over_the_weeks_of_a_champion():
    import datetime as dt
    import math

    from market_mlops.tasks.refresh import spent_confidence, test_number

    cutoff = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert test_number(cutoff, cutoff + dt.timedelta(days=3)) == 1
    assert test_number(cutoff, cutoff + dt.timedelta(days=15)) == 3
    one_sided = [(1 - spent_confidence(0.9, k)) / 2 for k in range(1, 10_000)]
    assert one_sided[0] == pytest.approx(0.05 * 6 / math.pi ** 2) and one_sided == sorted(one_sided, reverse=True)
    assert sum(one_sided) < 0.05  # every test of a champion together: at most the one-sided level of one test


def test_a_small_tail_is_read_off_the_bootstrap_standard_error_not_the_most_extreme_resample():
    import numpy as np

    from market_mlops.model.evaluation import bootstrap_accuracy_difference

    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 400)
    a, b = np.where(rng.random(400) < 0.5, y, (y + 1) % 3), np.where(rng.random(400) < 0.4, y, (y + 2) % 3)
    lows = [bootstrap_accuracy_difference(y, a, b, 500, 1, 5, 1 - 2 * alpha).low for alpha in (0.005, 0.0005, 0.00005)]
    assert lows[0] > lows[1] > lows[2]  # a percentile interval of 500 resamples stops at its smallest one


def _gate(champion, baselines, y, pred):
    import numpy as np

    from market_mlops.config import load_config
    from market_mlops.tasks.promotion import gate_decision

    cfg = load_config(environ={})
    evaluation = {"model_accuracy": float((pred == y).mean()),
                  **{f"{b}_accuracy": float((p == y).mean()) for b, p in baselines.items()}}
    proba = np.eye(3)[pred] * 0.9 + 0.03
    return gate_decision(None, y, proba, evaluation, baselines, 5, champion, False, cfg)


def test_the_gate_compares_a_champion_on_its_unseen_rows_and_falls_back_to_the_baseline_when_it_is_worse():
    import numpy as np

    from market_mlops.tasks.promotion import ChampionOnHoldout

    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 600)
    persistence = np.where(rng.random(600) < 0.45, y, (y + 1) % 3)
    baselines = {"majority": np.zeros(600, dtype=int), "persistence": persistence}
    weak = np.where(rng.random(600) < 0.40, y, (y + 2) % 3)  # below the persistence baseline: not promoted
    unseen = np.arange(600) >= 100
    broken = ChampionOnHoldout("3", unseen, np.where(rng.random(500) < 0.2, y[unseen], (y[unseen] + 1) % 3), 5)
    gate = _gate(broken, baselines, y, weak)
    assert not gate.decision.promote and gate.demote.startswith("champion v3 is significantly worse than the "
                                                                "persistence baseline on the 500 holdout rows")
    sound = ChampionOnHoldout("3", unseen, np.where(rng.random(500) < 0.46, y[unseen], (y[unseen] + 1) % 3), 5)
    assert _gate(sound, baselines, y, weak).demote is None
    # A challenger that beats the baselines, against a champion it cannot be compared with: the baselines decide.
    strong = np.where(rng.random(600) < 0.7, y, (y + 2) % 3)
    unfair = ChampionOnHoldout("3", np.zeros(600, dtype=bool), None, 5, note="it learned all but 0 of the 600 rows")
    decided = _gate(unfair, baselines, y, strong)
    assert decided.decision.promote and decided.decision.reason == (
        "beats both baselines; champion v3 not compared: it learned all but 0 of the 600 rows")
    baseline_champion = ChampionOnHoldout("2", np.ones(600, dtype=bool), persistence, 5, is_baseline=True,
                                          rule="persistence")
    assert _gate(baseline_champion, baselines, y, strong).decision.reason == \
        "beats both baselines: replaces the baseline champion v2"
