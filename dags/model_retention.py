"""
### Retention (weekly)

Runs Sundays at 05:00 UTC (before Monday's weight refresh). **As of the interval end**:

1. per registered model, keeps the champion, the challenger, the version the champion replaced (a rollback's
   default target) and the newest `retention.keep_versions`; every older version is tagged `archived` and its model
   files are removed from the artifact store (its run and metrics stay in MLflow);
2. forecasts and drift checks older than `retention.archive_after_months`, of versions no longer kept, move from
   the SQL store to monthly Parquet files under `retention.archive_url`;
3. data versions older than that which no kept model version was trained on (the head and recent versions always
   stay) are garbage-collected from the
   DVC remote and this worker's cache; a backfill of their dates trains on the first kept version covering them.

A dry run by default, scheduled or triggered: it logs the plan and changes nothing. A triggered run applies it
when `apply` is ticked in the form (the same as `market-mlops retention --apply`); scheduled runs apply it only when
the deployment says so (`retention.apply_on_schedule: true`, or `MLOPS__RETENTION__APPLY_ON_SCHEDULE=true`). Data
versions logged within `retention.archive_after_months` of the newest data are never collected, whatever the date
of the run: a retrain or replay of a recent month can always materialize its version.

**Params**: `apply` (off: a dry run that logs the plan).

**When it fails**
- A store is unreachable (MLflow, the SQL store, the DVC remote): nothing half-done is lost; Airflow retries and the
  next run finishes what this one started (every step is safe to repeat).
- "cannot be read from the remote" for a kept data version: nothing was collected; check the DVC remote.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from market_mlops.orchestration import (
    configured_start_date,
    default_args,
    fail_now_when_permanent,
    with_run_interval,
)

if TYPE_CHECKING:  # types only: an annotation Airflow can resolve as a dict would push every key as an XCom
    from market_mlops.contracts import RetentionReport


@dag(
    dag_id="model_retention",
    schedule=CronDataIntervalTimetable("0 5 * * 0", timezone="UTC"),
    start_date=configured_start_date(),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retries=1),
    tags=["registry", "mlflow", "dvc", "weekly"],
    doc_md=__doc__,
    params={
        "apply": Param(False, type="boolean", description="Carry the plan out: archive versions, move old rows, "
                       "collect data versions (off: a dry run that logs the plan and changes nothing)"),
    },
)
def model_retention():
    @task
    @fail_now_when_permanent
    @with_run_interval
    def apply_retention(params=None, data_interval_end=None, dag_run=None) -> RetentionReport:
        from market_mlops.tasks.retention import retention_applies, run_retention

        return run_retention(apply=retention_applies(bool(params["apply"]), str(dag_run.run_type)),
                             as_of=data_interval_end)

    apply_retention()


model_retention()
