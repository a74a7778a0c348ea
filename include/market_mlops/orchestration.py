"""What every DAG file shares: default arguments, the dataset Asset, pool names.

Imported at parse time by the DAG files, so it imports only the standard library and `airflow.sdk`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Asset, Param

# The versioned dataset: the ingestion DAG emits an event per new data version (extra carries the DVC md5).
# Name only: a URI scheme such as dvc:// makes Airflow load every provider's URI handlers (boto3) at parse time.
MARKET_DATASET = Asset(name="market_dataset", group="market-data")

DVC_POOL = "dvc"  # one slot: DVC takes a repo lock, so versioning steps queue instead of failing
TRAINING_POOL = "training"  # bounds concurrent model fits on a worker host


def on_task_failure(context: dict[str, Any]) -> None:
    """Failure notifier for every task: Slack when configured, else the task log and the outbox."""
    from market_mlops.monitoring.alerts import notify_task_failure

    notify_task_failure(context)


def default_args(owner: str = "mlops", retries: int = 2, retry_minutes: int = 5) -> dict[str, Any]:
    return {
        "owner": owner,
        "retries": retries,
        "retry_delay": dt.timedelta(minutes=retry_minutes),
        "retry_exponential_backoff": True,
        "on_failure_callback": on_task_failure,
    }


def list_param(value: Any) -> list[str] | None:
    """A UI list param (or comma-separated string); empty means 'everything configured'."""
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        value = value.split(",")
    return [str(v).strip() for v in value if str(v).strip()] or None


def universe_params(scope: str) -> dict[str, Param]:
    """The `symbols` and `timeframes` trigger-form params that narrow a run to part of `scope`."""
    return {
        "symbols": Param([], type="array", items={"type": "string"}, description=f"Symbols (empty = all {scope})"),
        "timeframes": Param([], type="array", items={"type": "string", "enum": ["m15", "h1", "h4", "d1"]},
                            description=f"Timeframes (empty = all {scope})"),
    }
