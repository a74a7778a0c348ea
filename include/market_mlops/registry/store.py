"""The MLflow tracking store: the client, the suite's experiments, runs found by their deterministic key.

One registered model per (symbol, timeframe): `<SYMBOL>-<timeframe>-direction`. Errors are told apart here: "does
not exist" is an answer; anything else (server down, refused) propagates, so the task fails and Airflow retries.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from market_mlops.config import PipelineConfig, get_config

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

log = logging.getLogger(__name__)
# An embedded MLflow store migrates its SQLite schema in the first task that opens it: two dozen INFO lines of alembic
# and MLflow's db utils that say nothing a user acts on (a failure still raises and is logged).
for _chatty in ("alembic.runtime.migration", "mlflow.store.db.utils"):
    logging.getLogger(_chatty).setLevel(logging.WARNING)

EXPERIMENT = "market-direction"
DRIFT_EXPERIMENT = "market-drift"


class RegistryError(RuntimeError):
    """The tracking server or registry refused or could not be reached; the message says what to check."""

    hint = ('check that the MLflow server (MLFLOW_TRACKING_URI) answers and the credentials are valid; '
            'Airflow retries the task')


class RegistryRefusal(RegistryError):
    """The registry answered and the request cannot be met as asked: a version that does not exist, nothing to roll
    back to. A retry gets the same answer."""

    retryable = False

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def model_slug(symbol: str, timeframe: str, horizon: int | None = None, cfg: PipelineConfig | None = None) -> str:
    """`AAPL-d1` for the timeframe's main horizon (None), `AAPL-d1-h20` for another: the model's part of its
    registered name and of its runs' keys."""
    if horizon is None or horizon == (cfg or get_config()).main_horizon(timeframe):
        return f"{symbol}-{timeframe}"
    return f"{symbol}-{timeframe}-h{horizon}"


def model_name(symbol: str, timeframe: str, horizon: int | None = None, cfg: PipelineConfig | None = None) -> str:
    return f"{model_slug(symbol, timeframe, horizon, cfg)}-direction"


def client(cfg: PipelineConfig | None = None) -> MlflowClient:
    import mlflow
    from mlflow import MlflowClient

    cfg = cfg or get_config()
    # Download progress bars fill task logs with carriage returns, and the URL MLflow prints when a run ends costs a
    # round trip to read the run back (the suite logs its own links); a user can still turn either back on.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    mlflow.set_tracking_uri(cfg.mlflow_tracking_uri)
    if cfg.mlflow_tracking_uri.startswith("sqlite:///"):
        Path(cfg.mlflow_tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    found = MlflowClient(tracking_uri=cfg.mlflow_tracking_uri)
    if cfg.mlflow_tracking_uri.startswith("sqlite:///"):
        _write_ahead_log(Path(cfg.mlflow_tracking_uri.removeprefix("sqlite:///")))
    return found


_WAL_DONE: set[Path] = set()


def _write_ahead_log(path: Path) -> None:
    """The embedded MLflow store in SQLite's write-ahead-log mode (kept by the file): a commit appends instead of
    rewriting a journal, ~0.7 ms instead of ~2.5 ms here, and a version costs some thirty commits. Once per file and
    process; a file MLflow has not created yet is left until it exists."""
    import sqlite3

    if path in _WAL_DONE or not path.exists():
        return
    try:
        with sqlite3.connect(path, timeout=5) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError:  # busy (another process mid-write): the mode is only a speed-up, try next time
        return
    _WAL_DONE.add(path)


def already_exists(error: Exception) -> bool:
    return getattr(error, "error_code", "") == "RESOURCE_ALREADY_EXISTS"


def does_not_exist(error: Exception) -> bool:
    return getattr(error, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # MLflow's UI opens an experiment in the view this names
CLASSIC_ML = "custom_model_development"  # runs, metrics, models: not the GenAI view (traces, "Evaluations")


_EXPERIMENT_IDS: dict[tuple[str, str], str] = {}  # (tracking URI, name) -> id: an experiment's id never changes


def experiment_id(cfg: PipelineConfig | None = None, name: str = EXPERIMENT) -> str:
    """Get or create, marked for MLflow's classic machine-learning view; safe when mapped tasks on a fresh tracking
    store race to create it (the loser re-reads). Asked once per process and tracking store: every run a worker logs
    needs it twice (find the run, start it), a round trip each to a tracking server."""
    cfg = cfg or get_config()
    key = (cfg.mlflow_tracking_uri, name)
    if key not in _EXPERIMENT_IDS:
        _EXPERIMENT_IDS[key] = _get_or_create_experiment(cfg, name)
    return _EXPERIMENT_IDS[key]


def _get_or_create_experiment(cfg: PipelineConfig, name: str) -> str:
    import mlflow.exceptions

    c = client(cfg)
    found = c.get_experiment_by_name(name)
    if found is not None:
        if (found.tags or {}).get(EXPERIMENT_KIND_TAG) != CLASSIC_ML:  # one made by an earlier release
            c.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, CLASSIC_ML)
        if str(found.artifact_location).startswith("file:") and cfg.mlflow_tracking_uri.startswith("http"):
            log.warning("experiment %s keeps its runs' files on the disk of the worker that logged them (%s), where "
                        "other hosts cannot read them (created before the artifact root defaulted to the server's): "
                        "rename it in MLflow's UI so the next run creates it again in the tracking server's store",
                        name, found.artifact_location)
        return str(found.experiment_id)
    try:
        root = cfg.mlflow_artifact_root
        return str(c.create_experiment(name, artifact_location=None if root is None else f"{root.rstrip('/')}/{name}",
                                       tags={EXPERIMENT_KIND_TAG: CLASSIC_ML}))
    except mlflow.exceptions.MlflowException as error:
        if not already_exists(error):
            raise
        again = c.get_experiment_by_name(name)
        assert again is not None
        return str(again.experiment_id)


def find_run(run_key: str, cfg: PipelineConfig | None = None, experiment: str = EXPERIMENT) -> Run | None:
    """The newest run tagged with `run_key` (how a retried task finds its own earlier work)."""
    c = client(cfg)
    runs = c.search_runs([experiment_id(cfg, experiment)], filter_string=f"tags.`mlops.run_key` = '{run_key}'",
                         order_by=["attributes.start_time DESC"])
    return runs[0] if runs else None

