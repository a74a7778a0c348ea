"""
### Weekly ensemble-weight refresh

Runs Mondays at 06:00 UTC; **data interval = the previous week** (Monday 06:00 to Monday 06:00). For each
champion, its unchanged base models score the most recent window of resolved bars before the interval end; the
ensemble weights are refitted on the earlier part of that window and the result is registered as a new version
that reuses the base-model files (same checksums) and records its parent (`refresh.parent_version`). The promotion
gate of the retrain decides on the later part of the window (bars not used to fit the weights).

**Params**: `symbols`, `timeframes` narrow the champions refreshed (empty = every champion).

**When it fails**
- `list_champions` with "stale data": the newest data version ends before the last session of the week (less
  `training.max_data_lag_days`); a critical alert went out and nothing was refreshed. Run or backfill
  `market_data_ingestion` up to the date in the message, then clear the task (it fails at once: no retry).
- `refresh_weights` (one map index per champion, or per shard of champions in a large fleet, `fleet.*`): its error
  names each model that failed; the others finished. "need more history" means fewer resolved bars than the window;
  ingest more sessions. A checksum error means a stored artifact changed: investigate before anything else, then
  retrain.
- Rerunning is safe: a finished refresh is found by its key and not registered twice (a retry redoes only the
  failed models).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import CronDataIntervalTimetable, dag, task

from market_mlops.orchestration import (
    TRAINING_POOL,
    configured_start_date,
    default_args,
    fail_now_when_permanent,
    horizon_list,
    horizon_param,
    list_param,
    universe_params,
    with_run_interval,
)

if TYPE_CHECKING:  # types only: an annotation Airflow can resolve as a dict would push every key as an XCom
    from market_mlops.contracts import ChampionShard, TrainingSummary


@dag(
    dag_id="weekly_weight_refresh",
    schedule=CronDataIntervalTimetable("0 6 * * 1", timezone="UTC"),
    start_date=configured_start_date(),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retries=1),
    tags=["training", "mlflow", "weekly"],
    doc_md=__doc__,
    params={
        **universe_params("champions"),
        **horizon_param("champions"),
    },
)
def weekly_weight_refresh():
    @task
    @fail_now_when_permanent
    @with_run_interval
    def list_champions(params=None, data_interval_end=None) -> list[ChampionShard]:
        from market_mlops.tasks.drift_check import require_fresh_data
        from market_mlops.tasks.universe import champion_shards

        require_fresh_data(data_interval_end, what="weight refresh", withheld="no weights were refreshed")
        return champion_shards(symbols=list_param(params["symbols"]), timeframes=list_param(params["timeframes"]),
                               horizons=horizon_list(params.get("horizons")))

    @task(pool=TRAINING_POOL, map_index_template="{{ shard['label'] }}")
    @fail_now_when_permanent
    @with_run_interval
    def refresh_weights(shard: ChampionShard, data_interval_end=None, dag_run=None, ti=None) -> list[TrainingSummary]:
        from market_mlops.orchestration import shard_failure
        from market_mlops.tasks.refresh import refresh_shard
        from market_mlops.tasks.shards import ShardFailed

        ctx = {"dag_id": ti.dag_id, "run_id": dag_run.run_id, "task_id": ti.task_id}
        try:
            return refresh_shard(shard, data_interval_end, ctx)
        except ShardFailed as failed:
            raise shard_failure(failed) from None

    refresh_weights.expand(shard=list_champions())


weekly_weight_refresh()
