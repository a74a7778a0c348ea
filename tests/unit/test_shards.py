"""Shards: a small universe keeps one model per mapped task, a large one stays far below Airflow's mapping limit;
a shard goes on past a failed model and fails at the end naming it."""

from __future__ import annotations

import pytest

from market_mlops.config import Fleet
from market_mlops.tasks.shards import ShardFailed, run_shard
from market_mlops.tasks.universe import shard_label, split_into_shards


def _keys(n: int) -> list[dict[str, str]]:
    return [{"symbol": f"S{i:04d}", "timeframe": "d1"} for i in range(n)]


@pytest.mark.parametrize(("models", "tasks", "largest"), [(8, 8, 1), (256, 256, 1), (257, 129, 2), (1_100, 220, 5),
                                                          (2_000, 250, 8), (10_000, 250, 40)])
def test_the_default_maps_one_model_per_task_until_it_must_group(models, tasks, largest):
    shards = split_into_shards(_keys(models), Fleet().size_for(models))
    assert len(shards) == tasks and max(len(s) for s in shards) == largest
    assert len(shards) <= 256 < 1024  # Airflow's [core] max_map_length
    assert [k for s in shards for k in s] == _keys(models)  # every model once, in order


def test_shards_are_even_and_a_configured_size_wins():
    assert [len(s) for s in split_into_shards(_keys(10), 4)] == [3, 4, 3]
    assert Fleet(shard_size=3).size_for(8) == 3 and Fleet(max_mapped_tasks=2).size_for(8) == 4
    assert split_into_shards([], 5) == []


def test_the_label_names_the_first_and_last_model():
    keys = _keys(3)
    assert shard_label(keys[:1]) == "S0000 d1"
    assert shard_label(keys) == "S0000 d1 .. S0002 d1 (3 models)"


def test_a_failure_does_not_stop_the_shard_and_is_named_at_the_end():
    done = []

    def work(key: dict[str, str]) -> str:
        if key["symbol"] == "S0001":
            raise ValueError("only 40 rows")
        if key["symbol"] == "S0003":
            raise ConnectionError("registry down")
        done.append(key["symbol"])
        return key["symbol"]

    with pytest.raises(ShardFailed) as failed:
        run_shard(_keys(5), lambda k: k["symbol"], work)
    assert done == ["S0000", "S0002", "S0004"]
    assert [f.model for f in failed.value.failures] == ["S0001", "S0003"]
    assert "2 of 5 models failed" in str(failed.value) and "S0001: ValueError: only 40 rows" in str(failed.value)
    assert failed.value.retryable  # an outage among them: Airflow retries
    with pytest.raises(ShardFailed) as bad_data:
        run_shard(_keys(2), lambda k: k["symbol"], lambda k: (_ for _ in ()).throw(ValueError("too few rows")))
    assert not bad_data.value.retryable  # bad data only: a retry cannot help
    assert run_shard(_keys(2), lambda k: k["symbol"], lambda k: k["symbol"]) == ["S0000", "S0001"]


def test_a_shard_of_bad_data_fails_at_once_and_anything_else_is_retried():
    from airflow.sdk.exceptions import AirflowFailException

    from market_mlops.orchestration import shard_failure
    from market_mlops.tasks.shards import ModelFailure

    bad = ShardFailed([ModelFailure("S0001-d1-direction", ValueError("only 40 rows"))], done=4)
    assert isinstance(shard_failure(bad), AirflowFailException) and "S0001-d1-direction" in str(shard_failure(bad))
    outage = ShardFailed([ModelFailure("S0001-d1-direction", ConnectionError("refused"))], done=4)
    assert shard_failure(outage) is outage
