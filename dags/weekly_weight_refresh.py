"""
### Weekly ensemble-weight refresh

Runs Mondays at 06:00 UTC; **data interval = the previous week** (Monday 06:00 to Monday 06:00). For each
champion, its unchanged base models score the most recent window of resolved bars before the interval end; the
ensemble weights are refitted on the earlier part of that window and the result is registered as a new version
that reuses the base-model files (same checksums) and records its parent (`refresh.parent_version`). The promotion
gate of the retrain decides on the later part of the window (bars not used to fit the weights).

**Params**: `symbols`, `timeframes` narrow the champions refreshed (empty = every champion).

**When it fails**
- `refresh_weights` for one model: "need more history" means fewer resolved bars than the window; ingest more
  sessions. A checksum error means a stored artifact changed: investigate before anything else, then retrain.
- Rerunning is safe: a finished refresh is found by its key and not registered twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import CronDataIntervalTimetable, dag, task

from market_mlops.orchestration import (
    TRAINING_POOL,
    configured_start_date,
    default_args,
    list_param,
    universe_params,
)

if TYPE_CHECKING:  # types only: an annotation Airflow can resolve as a dict would push every key as an XCom
    from market_mlops.contracts import ChampionRef, TrainingSummary


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
    },
)
def weekly_weight_refresh():
    @task
    def list_champions(params=None) -> list[ChampionRef]:
        from market_mlops.tasks.universe import champions

        return champions(symbols=list_param(params["symbols"]), timeframes=list_param(params["timeframes"]))

    @task(pool=TRAINING_POOL, map_index_template="{{ champion['symbol'] }} {{ champion['timeframe'] }}")
    def refresh_weights(champion: ChampionRef, data_interval_end=None, dag_run=None, ti=None) -> TrainingSummary:
        from market_mlops.tasks.refresh import refresh_weights as refresh

        ctx = {"dag_id": ti.dag_id, "run_id": dag_run.run_id, "task_id": ti.task_id}
        return refresh(champion["symbol"], champion["timeframe"], data_interval_end, ctx)

    refresh_weights.expand(champion=list_champions())


weekly_weight_refresh()
