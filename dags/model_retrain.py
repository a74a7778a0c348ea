"""
### Monthly full retrain

Runs for each closed month: **as soon as the ingestion DAG publishes the data of the month's last trading session**
(an event on the `market_dataset` Asset), and at 00:00 UTC on the 1st as a fallback (data interval = the previous
month). Both paths train on bars before the 1st (point in time), from the data version of that event (its DVC
md5, else the version log), and share one MLflow run key per model and month, so the second one finds the work
done. Asset events for other sessions start a run whose `plan_retrain` skips everything.

One mapped `retrain_model` task per (symbol, timeframe), or per shard of models in a universe larger than
`fleet.max_mapped_tasks` (the map index names its first and last model), in pool `training`: features, labels, purged and
embargoed walk-forward folds, RandomForest + XGBoost + LightGBM, ensemble weights and a calibration pool fitted out
of fold, holdout metrics (log-loss, Brier, accuracy, IC) next to the climatology and persistence baselines, an MLflow
run and a registered model version (`<SYMBOL>-<tf>-direction`). The gate decides on that evaluated fit: the
`champion` alias moves only if the new version's log-loss skill over each baseline is proven (a betting e-value at
the retrain's share of `training.yearly_false_promotions`, at least `training.min_compare_outcomes` outcomes, else
"too few outcomes": nothing changes) and it is not proven worse than the champion on holdout rows the champion never
learned. A version that does not pass stays challenger and forecasts in shadow: `drift_check` promotes it once its
live record proves it better. The version registered is the same configuration refit on every labelled row up to
the cutoff (tags `fit.end`, `evaluation.end`). A series with no champion whose model does not pass gets the better
baseline as a signed `kind=baseline` version and champion ("no model has beaten it yet"); so does a series whose
champion is proven worse than that baseline on the rows it never learned, or whose emergency retrain (reason
`emergency: ...`) finds no challenger that passes. `report_retrain`
summarizes (a failed model fails its map index and the run, and is alerted by the failure callback).

**Params**: `symbols`, `timeframes` (empty = all configured), `search_trials` (Optuna trials per booster,
0 = fixed hyperparameters), `force_promotion` (promote even if the gate says no; recorded in the audit trail),
`until` (train on data up to this ISO time instead of the interval end: how `drift_check` starts an emergency
retrain), `reason` (recorded).

**When it fails**
- `plan_retrain` skipped: normal for an Asset event of a session that is not the month's last.
- `resolve_data_version`: no data version covers the interval, or the newest one ends more than
  `training.max_data_lag_days` before the cutoff's last session (a late ingestion; a fresh deployment whose first
  cron run finds only old data): run or backfill `market_data_ingestion` up to the date in the message first.
- one `retrain_model` map index: only the models its error names failed (the others of its shard and every other
  shard finished); read its log, fix, clear that map index: the retry trains only the failed models (a finished one
  is found by its run key and not registered twice). Bad data in every failed model fails it without retries.
- A bad champion in production: `market-mlops rollback --symbol S --timeframe TF` or trigger `model_rollback`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable, Param, dag, task

from market_mlops.orchestration import (
    MARKET_DATASET,
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
    from market_mlops.contracts import ModelShard, RetrainPlan, RetrainReport, TrainingData, TrainingSummary


@dag(
    dag_id="model_retrain",
    schedule=AssetOrTimeSchedule(timetable=CronDataIntervalTimetable("0 0 1 * *", timezone="UTC"), assets=[MARKET_DATASET]),
    start_date=configured_start_date(),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retries=1),
    tags=["training", "mlflow", "monthly"],
    doc_md=__doc__,
    params={
        **universe_params("configured"),
        **horizon_param("configured"),
        "search_trials": Param(0, type="integer", minimum=0, maximum=200, description="Optuna trials per booster"),
        "force_promotion": Param(False, type="boolean", description="Promote regardless of the gate (audited)"),
        "until": Param(None, type=["null", "string"], description="Train on data up to this time (ISO 8601) instead "
                       "of the interval end (empty = the interval end); set by drift_check for an emergency retrain"),
        "reason": Param(None, type=["null", "string"], description="Why this retrain runs, recorded on every run it "
                        "makes (empty = manual for a triggered run, scheduled for the monthly one; drift_check sets "
                        "emergency: ...)"),
    },
)
def model_retrain():
    @task(inlets=[MARKET_DATASET])
    @fail_now_when_permanent
    @with_run_interval
    def plan_retrain(params=None, data_interval_end=None, triggering_asset_events=None,
                     inlet_events=None) -> RetrainPlan:
        from airflow.sdk.exceptions import AirflowSkipException

        from market_mlops.tasks.retrain import plan_retrain as plan

        triggering = [e.extra for events in (triggering_asset_events or {}).values() for e in events]
        decision = plan(params["until"], data_interval_end, triggering, inlet_events[MARKET_DATASET])
        if decision is None:
            raise AirflowSkipException("the triggering data version does not close a month: nothing to retrain")
        return decision

    @task
    @fail_now_when_permanent
    def resolve_data_version(plan: RetrainPlan) -> TrainingData:
        import datetime as dt

        from market_mlops.tasks.retrain import resolve_data_version as resolve

        # No data version for the interval (NoDataVersion) fails at once: waiting will not create data.
        return resolve(dt.datetime.fromisoformat(plan["until"]), plan["md5"])

    @task
    @fail_now_when_permanent
    def list_models(params=None) -> list[ModelShard]:
        from market_mlops.tasks.universe import model_shards

        return model_shards(list_param(params["symbols"]), list_param(params["timeframes"]),
                            horizons=horizon_list(params.get("horizons")))

    @task(pool=TRAINING_POOL, map_index_template="{{ shard['label'] }}")
    @fail_now_when_permanent
    def retrain_model(shard: ModelShard, data: TrainingData, params=None, dag_run=None, ti=None) -> list[TrainingSummary]:
        from market_mlops.orchestration import shard_failure
        from market_mlops.tasks.retrain import retrain_shard
        from market_mlops.tasks.shards import ShardFailed

        reason = params["reason"] or ("manual" if str(dag_run.run_type).endswith("manual") else "scheduled")
        ctx = {"dag_id": ti.dag_id, "run_id": dag_run.run_id, "task_id": ti.task_id, "map_index": str(ti.map_index),
               "reason": reason}
        try:
            return retrain_shard(shard, data, ctx, params["force_promotion"], params["search_trials"],
                                 emergency=reason.startswith("emergency"))
        except ShardFailed as failed:
            raise shard_failure(failed) from None

    @task(trigger_rule="none_failed_min_one_success")  # a failed shard fails the run (and alerted on its own)
    @fail_now_when_permanent
    def report_retrain(results, shards: list[ModelShard], data: TrainingData | None) -> RetrainReport:
        from airflow.sdk.exceptions import AirflowSkipException

        from market_mlops.tasks.retrain import report_retrain as report

        if data is None:  # plan_retrain skipped: nothing was due
            raise AirflowSkipException("no retrain was planned for this run")
        return report(list(results), shards)

    data = resolve_data_version(plan_retrain())
    shards = list_models()
    results = retrain_model.partial(data=data).expand(shard=shards)
    report_retrain(results, shards, data)


model_retrain()
