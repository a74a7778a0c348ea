"""
### Weekday drift check (with batch forecasts)

Runs after every trading session of the configured calendar (`universe.schedule_calendar`, +45 min; the same
trading-session timetable as ingestion, holidays skipped). `list_champions` reads every champion in one registry
search and every cooldown in one query of the SQL store. `check_model_drift` is mapped one task per champion, or
per shard of champions in a fleet larger than `fleet.max_mapped_tasks`; a shard first reads its champions' versions
(two registry searches) and runs (one search) and downloads their model and reference files side by side (into the
worker's cache; every load still verifies signature and checksums), then, for each champion (the version the listing
named; one that lost the champion alias since is not checked: the next run checks the version that holds it):

1. scores the bars after the model's training cutoff up to the session close and upserts the forecasts into
   the SQL store's `forecasts` table (symbol, timeframe, bar ts, horizon, model version, class probabilities, predicted);
2. the accuracy band: a change detector per band (monitor -5 pts, drift -10, emergency -15; a CUSUM over every
   call the champion resolved since it began serving, against the lower bound of its out-of-sample reference, its
   threshold set for a designed number of checks between false alarms; `monitoring/detector.py`), "too few
   outcomes" until the drift band could fire; beside it the realized accuracy of the last resolved forecasts with
   its bound (`drift.band_confidence`);
3. PSI and KS of every feature against the training reference stored with the model, and PSI of the predicted
   classes; a JSON and HTML report in the MLflow experiment `market-drift` (one run per champion and session, found
   again by a rerun or a retry, by its record or its name; the shard's reports are logged side by side once its
   champions are measured), a row in the SQL store's `drift_checks`;
4. a Slack alert (drift or emergency band, or drifted features) with links to this run and the model;
5. live records: the `challenger` version (when it is another trained model) scores the same bars in shadow (role
   `shadow`, never served); on the sessions both resolved, a betting e-process of the paired log-loss difference
   (valid read after every session) promotes it once proven at its level, and the same evidence against the
   baselines demotes a champion model a baseline is proven better than. The record (sessions, outcomes, mean
   difference with its interval, e-value and threshold, decision) is in the check's record and report.

`build_consensus`, per symbol: a consensus direction across its champions (every timeframe and horizon; skipped in a
run narrowed by `timeframes` or `horizons`, which checks only some of them): each model champion's newest forecast
weighted by its log-loss skill over its own baselines (live once judged, else the gate's; baseline champions and
models without skill do not vote), with an agreement score, resolved like its anchor's forecast (the voter looking
furthest ahead) and shown as a call only once its log-loss is proven better than the anchor's on the same calls
("no consensus edge" until then); stored in the SQL store's `consensus`.

`trigger_emergency_retrain` starts `model_retrain` for each emergency model (one model, data up to this session),
at most once per `drift.cooldown_days`.

**Params**: `symbols`, `timeframes` narrow the champions checked (empty = all).

**When it fails**
- `list_champions` with "stale data": the newest data version ends before this session (less
  `training.max_data_lag_days`); a critical alert went out and no band was measured. Run or backfill
  `market_data_ingestion` up to the date in the message, then clear the task.
- `check_model_drift`: its error names each champion that failed (the others of its shard are checked): usually no
  champion artifacts (checksum refused: do not override, retrain), no bars for the session (ingestion did not
  run: run it, then clear this task) or MLflow down while its report was logged (its report run is ended FAILED;
  nothing is recorded for it). The retry checks only the failed ones: a champion this run checked already keeps its
  result and is not alerted twice.
- Alerts never fail the run: with Slack down they wait in the outbox and are retried on the next alert.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task
from trading_sessions import TradingSessionTimetable

from market_mlops.orchestration import (
    configured_calendar,
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
    from market_mlops.contracts import ChampionShard, ConsensusResult, DriftResult, RetrainConf


@dag(
    dag_id="drift_check",
    schedule=TradingSessionTimetable(exchange=configured_calendar(), settle_minutes=45),
    start_date=configured_start_date(),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retries=1),
    tags=["monitoring", "drift", "forecasts", "slack"],
    doc_md=__doc__,
    params={
        **universe_params("champions"),
        **horizon_param("champions"),
    },
)
def drift_check():
    @task
    @fail_now_when_permanent
    @with_run_interval
    def list_champions(params=None, data_interval_end=None) -> list[ChampionShard]:
        from market_mlops.tasks.drift_check import require_fresh_data
        from market_mlops.tasks.universe import champion_shards

        require_fresh_data(data_interval_end)  # old data: a critical alert and no band, never a silent success
        return champion_shards(symbols=list_param(params["symbols"]), timeframes=list_param(params["timeframes"]),
                               horizons=horizon_list(params.get("horizons")),
                               cooldown_until=data_interval_end)

    @task(map_index_template="{{ shard['label'] }}")
    @fail_now_when_permanent
    @with_run_interval
    def check_model_drift(shard: ChampionShard, data_interval_start=None, data_interval_end=None, dag_run=None,
                          ti=None) -> list[DriftResult]:
        from market_mlops.orchestration import shard_failure
        from market_mlops.tasks.drift_check import check_shard
        from market_mlops.tasks.shards import ShardFailed

        ctx = {"dag_id": ti.dag_id, "run_id": dag_run.run_id, "task_id": ti.task_id}
        try:
            return check_shard(shard, data_interval_start, data_interval_end, ctx)
        except ShardFailed as failed:
            raise shard_failure(failed) from None

    @task
    @fail_now_when_permanent
    def plan_emergency_retrains(results) -> list[RetrainConf]:
        from market_mlops.tasks.drift_check import emergency_retrain_confs

        return emergency_retrain_confs(list(results))

    @task
    @fail_now_when_permanent
    @with_run_interval
    def build_consensus(results, data_interval_end=None, params=None) -> list[ConsensusResult]:
        from airflow.sdk.exceptions import AirflowSkipException

        from market_mlops.tasks.drift_check import consensus_of_checks

        if list_param(params["timeframes"]) or horizon_list(params.get("horizons")):
            raise AirflowSkipException("this run checked some of each symbol's champions (timeframes or horizons "
                                       "narrowed): the session's consensus of all of them is left as it was")
        return consensus_of_checks(list(results), data_interval_end)

    checked = check_model_drift.expand(shard=list_champions())
    build_consensus(checked)
    confs = plan_emergency_retrains(checked)
    TriggerDagRunOperator.partial(task_id="trigger_emergency_retrain", trigger_dag_id="model_retrain",
                                  wait_for_completion=False).expand(conf=confs)


drift_check()
