"""What every DAG file shares: default arguments, the dataset Asset, the pools, the trigger-form params.

Imported at parse time by the DAG files, so it imports only the standard library, `airflow.sdk` and the config
(a small YAML file, validated in about 15 ms).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pendulum
from airflow.sdk import Asset, Param

# The versioned dataset: the ingestion DAG emits an event per new data version (extra carries the DVC md5).
# Name only: a URI scheme such as dvc:// makes Airflow load every provider's URI handlers (boto3) at parse time.
MARKET_DATASET = Asset(name="market_dataset", group="market-data")

DVC_POOL = "dvc"
TRAINING_POOL = "training"
# name -> (slots, description): created by `market-mlops pools` (airflow-init, the demo, the test tiers)
POOLS: dict[str, tuple[int, str]] = {
    DVC_POOL: (1, "DVC steps take a repo lock: one at a time"),
    TRAINING_POOL: (2, "concurrent model fits (slots: training.pool_slots, which also sets threads per fit)"),
}


def on_task_failure(context: dict[str, Any]) -> None:
    """Failure notifier for every task: Slack when configured, else the task log and the outbox."""
    from market_mlops.monitoring.alerts import notify_task_failure

    notify_task_failure(context)


def on_task_retry(context: dict[str, Any]) -> None:
    """Retry notifier: the try's log ends with why it failed and that Airflow retries it."""
    from market_mlops.monitoring.alerts import note_task_retry

    note_task_retry(context)


def default_args(owner: str = "mlops", retries: int = 2, retry_minutes: int = 5) -> dict[str, Any]:
    return {
        "owner": owner,
        "retries": retries,
        "retry_delay": dt.timedelta(minutes=retry_minutes),
        "retry_exponential_backoff": 2.0,  # a multiplier in Airflow 3.3: 5, 10, 20 minutes
        "on_failure_callback": on_task_failure,
        "on_retry_callback": on_task_retry,
    }


def fail_now_when_permanent(task_function: Callable[..., Any]) -> Callable[..., Any]:
    """Under `@task`: a failure no retry can fix (`monitoring.failures.is_permanent`) fails the task at once
    (Airflow's fail-now, the suite's error chained, so the log's last line names it and its fix); anything else is
    raised as it is and retried. Outages retry; user errors and missing things do not."""
    import functools

    @functools.wraps(task_function)
    def run(*args: Any, **kwargs: Any) -> Any:
        from market_mlops.monitoring.failures import is_permanent

        try:
            return task_function(*args, **kwargs)
        except Exception as error:
            if not is_permanent(error):
                raise
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{type(error).__name__}: {error}") from error

    return run


def with_run_interval(task_function: Callable[..., Any]) -> Callable[..., Any]:
    """Under `@task`: a run created without a logical date (Airflow 3's REST API and `airflow dags trigger` make one
    by default) has no data interval; the task gets the one its DAG's timetable gives a manual run at the run's
    `run_after`, as a run triggered from the form would have (the session before it, the month before it)."""
    import functools
    import inspect

    accepts = inspect.signature(task_function).parameters  # a run without an interval passes none of its keys

    @functools.wraps(task_function)
    def run(*args: Any, **kwargs: Any) -> Any:
        if "data_interval_end" in accepts and kwargs.get("data_interval_end") is None:
            from airflow.sdk import get_current_context

            context = get_current_context()
            interval = manual_interval(context["dag"].timetable, context["dag_run"].run_after)
            kwargs["data_interval_end"] = interval.end
            if "data_interval_start" in accepts:
                kwargs["data_interval_start"] = interval.start
        return task_function(*args, **kwargs)

    return run


def manual_interval(timetable: Any, run_after: dt.datetime) -> Any:
    """The data interval `timetable` gives a manual run at `run_after`. Read through the timetable as the scheduler
    holds it: the Task SDK's cron and asset-or-time schedules are declarations without `infer_manual_data_interval`
    (an asset-triggered retrain failed on one)."""
    from airflow.serialization.encoders import coerce_to_core_timetable

    return coerce_to_core_timetable(timetable).infer_manual_data_interval(run_after=pendulum.instance(run_after))


def shard_failure(failed: Exception) -> BaseException:
    """What a shard task raises when some of its models failed: Airflow's fail-now when every failure is bad data
    (no retry can fix it), the error itself otherwise, so Airflow retries and the retry redoes only those models."""
    from airflow.sdk.exceptions import AirflowFailException

    retryable = getattr(failed, "retryable", True)
    return failed if retryable else AirflowFailException(str(failed))


def configured_start_date() -> pendulum.DateTime:
    """The DAGs' start date (`schedule.start_date`): early, so that backfills of old history plan their runs."""
    from market_mlops.config import get_config

    start = get_config().schedule.start_date
    return pendulum.datetime(start.year, start.month, start.day, tz="UTC")


def configured_calendar() -> str:
    """The calendar the session timetables follow: `universe.exchange`, or a composite (`XNYS+FX`) when symbols
    in `universe.calendars` trade on another one."""
    from market_mlops.config import get_config

    return get_config().universe.schedule_calendar


def ensure_pools() -> dict[str, int]:
    """Create or resize the suite's pools in Airflow's metadata DB (idempotent); returns {name: slots}."""
    from airflow.models.pool import Pool

    from market_mlops.config import get_config

    configured = {**{name: slots for name, (slots, _) in POOLS.items()}, TRAINING_POOL: get_config().training.pool_slots}
    for name, (_, description) in POOLS.items():
        Pool.create_or_update_pool(name=name, slots=configured[name], description=description, include_deferred=False)
    return configured


def list_param(value: Any) -> list[str] | None:
    """A UI list param (or comma-separated string); empty means 'everything configured'."""
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        value = value.split(",")
    return [str(v).strip() for v in value if str(v).strip()] or None


def configured_symbols() -> list[str]:
    """The symbols of the config's universe (the trigger forms offer these)."""
    from market_mlops.config import get_config

    return list(get_config().universe.symbols)


def configured_timeframes() -> list[str]:
    """The timeframes of the universe (the trigger forms offer these, not every timeframe the config describes)."""
    from market_mlops.config import get_config

    return list(get_config().universe.timeframes)


def configured_horizons() -> list[int]:
    """Every horizon the universe's timeframes declare (the rollback form offers these)."""
    from market_mlops.config import get_config

    cfg = get_config()
    return sorted({h for t in cfg.universe.timeframes for h in cfg.spec(t).horizons})


def universe_params(scope: str) -> dict[str, Param]:
    """The `symbols` and `timeframes` trigger-form params that narrow a run to part of `scope`."""
    return {
        "symbols": Param([], type=["null", "array"], examples=configured_symbols(),
                         description=f"Symbols (empty = all {scope})"),
        "timeframes": Param([], type=["null", "array"], examples=configured_timeframes(),
                            description=f"Timeframes (empty = all {scope})"),
    }


def horizon_param(scope: str) -> dict[str, Param]:
    """The `horizons` trigger-form param of the per-model DAGs: a timeframe has one model per horizon."""
    # `examples`: the form offers the configured horizons as a pick list (not a JSON editor); it sends them as
    # text, a conf (the CLI, an emergency retrain) as numbers: both are horizons.
    return {"horizons": Param([], type=["null", "array"], items={"type": ["integer", "string"], "pattern": "^[0-9]+$"},
                              examples=configured_horizons(),
                              description=f"Horizons in bars (empty = every horizon of the timeframes, all {scope}); "
                                          "a model per (symbol, timeframe, horizon)")}


def horizon_list(value: Any) -> list[int] | None:
    """The `horizons` param as ints (a list or comma-separated string); empty means every configured horizon."""
    chosen = list_param(value)
    return [int(v) for v in chosen] if chosen else None


def announce_dataset_version(extra: dict[str, Any]) -> str | None:
    """Record a `market_dataset` Asset event for a data version made outside a DAG run (`market-mlops import`), as
    the ingestion DAG's outlet does: the retrain DAG scheduled on the Asset is queued. Written to Airflow's metadata
    DB the way the REST API's `POST /assets/events` writes it; returns what happened, in words, or None when there
    is nothing to tell (no Airflow here, or it never parsed the DAGs: no scheduler could act on an event)."""
    from airflow.assets.manager import AssetManager
    from airflow.serialization.definitions.assets import SerializedAssetUniqueKey
    from airflow.utils.session import create_session
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        with create_session() as session:
            key = SerializedAssetUniqueKey(name=MARKET_DATASET.name, uri=MARKET_DATASET.uri)
            event = AssetManager.register_asset_change(asset=key, extra=extra, source_is_api=True, session=session)
            event_id = event.id if event is not None else None
    except (OperationalError, ProgrammingError):  # no metadata DB here: nothing could consume the event
        return None
    if event_id is None:  # Airflow never parsed the DAGs: no retrain is scheduled on the Asset yet
        return None
    return f"Asset event {MARKET_DATASET.name!r} #{event_id}: a scheduler will queue model_retrain (when it is unpaused)"
