"""The 2,000-model projection `make bench-cluster` prints: waves of shard tasks, each its start/teardown and its
models one after another."""

from __future__ import annotations

import pytest

from market_mlops.dev.bench.fleet import PerModelCosts, projection, projection_table


def test_a_projection_counts_waves_of_shard_tasks_and_names_where_each_cost_was_measured():
    costs = PerModelCosts(task_overhead_s=2.0, beside_fit_s=1.5, fit_s=1.0, drift_task_overhead_s=1.0,
                          drift_champion_s=0.25)
    rows = {r["workers"]: r for r in projection(costs, per_shard=8)}
    assert rows[1]["tasks"] == 250
    assert rows[1]["retrain_s"] == pytest.approx(125 * (2.0 + 8 * 2.5))  # 250 tasks, 2 at a time on one worker
    assert rows[16]["retrain_s"] == pytest.approx(8 * (2.0 + 8 * 2.5))  # ceil(250 / 32) waves
    assert rows[4]["drift_s"] == pytest.approx(32 * (1.0 + 8 * 0.25))
    table = projection_table(costs)
    assert "make bench" in table and "cluster tier" in table and "| 16 |" in table
