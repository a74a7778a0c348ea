"""
### Market data ingestion and versioning

Runs after every trading session of the configured calendar (`universe.exchange`, or a composite such as
`XNYS+FX` when `universe.calendars` puts symbols on another one; weekends and holidays get no run). Each run covers
one session: **data interval = [session date 00:00 UTC (or the earliest open, if earlier), the latest close of its
sessions)**, and the run's logical date is the session date.

1. `fetch_bars`: raw files of the session from the source (landing folder/S3 prefix of CSV/Parquet drops, or the
   synthetic generator). Raw files are never modified or deleted.
2. `validate_bars`: the Great Expectations gate (`great_expectations/expectations/`). A failing batch is copied to
   `<batches>/quarantine/<interval>/<result id>/` with its report (`storage.batches_url`: the data root, or S3),
   Slack is told, and the run stops: nothing is merged. A passing batch is staged there for the next task.
3. `version_dataset` (pool `dvc`, one slot): the one writer, on any worker: under a lock in the SQL store, bring the
   worker's dataset copy to the head version, upsert the batch into its Parquet partitions, `dvc add` + `dvc push`
   (the DVC md5 is the data version), log it in `data_versions` and move the head, in one transaction. The md5
   goes to XCom and to an event on the `market_dataset` Asset.

**Params** (trigger form): `symbols` and `timeframes` narrow the configured universe (empty = all); `source`
overrides `source.kind` from config; `history_start` (YYYY-MM-DD) turns the run into an initial load of every session
from that date up to the run's interval, through the same gate; `allow_restatement` accepts files that change stored
bars (refused by default; counted in the version record and alerted); `accept_gaps` lets a price jump between the
stored bars and the batch's first bar through as a warning.

**When it fails**
- `validate_bars`: read the one-line summary in the log (file and failed check), open the quarantine report,
  fix or replace the file in the landing folder, then clear the task. Retries do not help a bad file.
- `version_dataset`: the DVC remote (S3/MinIO) or the SQL store is unreachable or refused the credentials; the
  head did not move, fix the remote and clear the task (safe to rerun, on any worker: same md5).
- Backfill: `airflow backfill create --dag-id market_data_ingestion --from-date A --to-date B` runs exactly the
  trading sessions in the range; any order gives the same dataset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import Param, dag, task
from trading_sessions import TradingSessionTimetable

from market_mlops.orchestration import (
    DVC_POOL,
    MARKET_DATASET,
    configured_calendar,
    configured_start_date,
    default_args,
    fail_now_when_permanent,
    list_param,
    universe_params,
    with_run_interval,
)

if TYPE_CHECKING:  # types only: an annotation Airflow can resolve as a dict would push every key as an XCom
    from market_mlops.contracts import FetchedBatch, ValidatedBatch, VersionRecord


@dag(
    dag_id="market_data_ingestion",
    schedule=TradingSessionTimetable(exchange=configured_calendar(), settle_minutes=30),
    start_date=configured_start_date(),
    catchup=False,
    max_active_runs=4,
    default_args=default_args(),
    tags=["market-data", "ingestion", "dvc", "great-expectations"],
    doc_md=__doc__,
    params={
        **universe_params("configured"),
        "source": Param(None, type=["null", "string"], enum=[None, "synthetic", "landing"],
                        description="Source override (empty = source.kind from config)"),
        "history_start": Param(None, type=["null", "string"], format="date",
                               description="Initial load: also ingest every session from this date (empty = only "
                                           "the run's session)"),
        "allow_restatement": Param(False, type="boolean", description="Accept files that change bars already stored "
                                   "(counted in the version record, alerted); refused by default"),
        "accept_gaps": Param(False, type="boolean", description="A price jump between the stored bars and the "
                             "batch's first bar is a warning instead of a rejection (the move is real)"),
    },
)
def market_data_ingestion():
    @task
    @fail_now_when_permanent
    @with_run_interval
    def fetch_bars(params=None, data_interval_start=None, data_interval_end=None) -> FetchedBatch:
        import datetime as dt

        from market_mlops.tasks.ingestion import fetch_batch

        history = dt.date.fromisoformat(params["history_start"]) if params["history_start"] else None
        return fetch_batch(data_interval_start, data_interval_end, list_param(params["symbols"]),
                           list_param(params["timeframes"]), params["source"] or None, history)

    @task
    @fail_now_when_permanent
    def validate_bars(fetched: FetchedBatch, run_id=None, params=None) -> ValidatedBatch:
        from airflow.sdk.exceptions import AirflowFailException

        from market_mlops.tasks.ingestion import BatchRejected, validate_batch

        try:
            return validate_batch(fetched, run_id=run_id, allow_restatement=bool(params.get("allow_restatement")),
                                  accept_gaps=bool(params.get("accept_gaps")))
        except BatchRejected as rejected:  # a bad file does not get better on retry
            raise AirflowFailException(str(rejected)) from None

    @task(pool=DVC_POOL, outlets=[MARKET_DATASET])
    @fail_now_when_permanent
    def version_dataset(validated: ValidatedBatch, run_id=None, outlet_events=None) -> VersionRecord:
        from market_mlops.tasks.ingestion import version_dataset as publish

        record = publish(validated, run_id=run_id)
        outlet_events[MARKET_DATASET].extra = {k: record[k] for k in ("md5", "interval_start", "interval_end", "gx_result_id")}
        return record

    version_dataset(validate_bars(fetch_bars()))


market_data_ingestion()
