"""The embedded stack: Airflow on SQLite, MLflow on SQLite, DVC with a local remote, all under MLOPS_HOME.

`configure_environment` must run before Airflow is imported. It only fills variables the user has not set, so
the same code runs against Postgres, an MLflow server or MinIO when the environment says so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from market_mlops.config import REPO_ROOT
from market_mlops.monitoring.failures import FAILURE_MARK

if TYPE_CHECKING:
    from airflow.models import DagRun
    from airflow.sdk import DAG


def stack_environment(home: Path) -> dict[str, str]:
    airflow_home = home / "airflow"
    return {
        "MLOPS_HOME": str(home),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__DEFAULT_WRAP": "True",  # a failed task's closing lines (why, what to do) read whole
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_CONFIGURE_LOGGING": "false",  # MLflow's records go through Airflow's logging, at their own level
        "GIT_PYTHON_REFRESH": "quiet",
        "MLOPS__TRAINING__FITS_PER_WORKER": "1",  # dag.test runs one task at a time: each fit may use every core
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT / "plugins"), os.environ.get("PYTHONPATH", "")) if p),
    }


def configure_environment(home: Path | None = None, override: bool = False) -> dict[str, str]:
    home = Path(home or os.environ.get("MLOPS_HOME") or REPO_ROOT / ".state").resolve()
    env = stack_environment(home)
    for key, value in env.items():
        if override or key not in os.environ:
            os.environ[key] = value
    (home / "airflow").mkdir(parents=True, exist_ok=True)
    plugins = str(REPO_ROOT / "plugins")
    if plugins not in sys.path:
        sys.path.insert(0, plugins)
    # The embedded stack serves Airflow's execution API in this process through starlette's TestClient, whose import
    # warns about Airflow's choice of httpx: a line users cannot act on (issue 47).
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient` is deprecated")
    return env


def airflow_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "airflow", *args], check=check, capture_output=True, text=True,
                          env=os.environ.copy())


def airflow_db_is_current() -> bool:
    """Whether the metadata DB is at the migration head of the installed Airflow (checked in this process, under a
    second; `airflow db migrate` in a child process costs 3-5 s of imports even when there is nothing to do)."""
    from airflow.utils.db import check_migrations

    with output_captured():  # its "Waiting for migrations..." line is no news to the user
        try:
            check_migrations(timeout=1)
        except Exception:  # no tables yet, behind the installed Airflow, or unreadable: the migration decides
            return False
    return True


def ensure_airflow_db() -> None:
    """Migrate the metadata DB (idempotent) and create the pools the DAGs use."""
    if not airflow_db_is_current():
        result = airflow_cli("db", "migrate", check=False)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"airflow db migrate failed: {tail[0]}")
    from market_mlops.orchestration import ensure_pools

    ensure_pools()


@contextlib.contextmanager
def output_captured() -> Iterator[list[bytes]]:
    """Everything written to this process's stdout and stderr (file descriptors 1 and 2: Airflow's structlog holds
    its own reference to the stream, so swapping sys.stdout would miss it), kept off the terminal; the list yielded
    holds it once the block is left."""
    import tempfile

    output: list[bytes] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 1)
        os.dup2(capture.fileno(), 2)
        try:
            yield output
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            capture.seek(0)
            output.append(capture.read())


def run_dag_in_process(dag: DAG, logical_date: dt.datetime, conf: dict[str, Any], log_path: str,
                       run_after: dt.datetime | None = None) -> tuple[str, float]:
    """One `dag.test()` run (no scheduler); Airflow's output goes to `log_path`, not the terminal, and each task's
    part of it to the file Airflow's log reader opens for that task (the UI's task logs)."""
    started = time.perf_counter()
    run = None
    try:
        with output_captured() as captured:
            run = dag.test(logical_date=logical_date, run_after=run_after, run_conf=dict(conf))
            _record_actual_start(run)
    finally:
        output = b"".join(captured)
        with open(log_path, "ab") as log_file:
            log_file.write(output)
        if run is not None:
            write_task_logs(output.decode(errors="replace"), run.dag_id, run.run_id)
    return str(getattr(run, "state", "unknown")), time.perf_counter() - started


_TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
_TASK_END = re.compile(r"\[DAG TEST\] end task task_id=(\S+) map_index=(-?\d+)")
_CONSOLE_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT[\d:.]+Z?) \[(\w+)\s*\] (.*)$")
_LOGGER_TAIL = re.compile(r"\s+\[([A-Za-z_][\w.]*)\]((?: [A-Za-z_]\w*=\S+)*)$")


def task_segments(output: str) -> dict[tuple[str, int], list[list[str]]]:
    """{(task id, map index): [the lines of each try, in order]}: what dag.test printed between a task's start and
    end markers (it runs one task at a time)."""
    segments: dict[tuple[str, int], list[list[str]]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        start = _TASK_START.search(line)
        if start:
            current = []
            segments.setdefault((start.group(1), int(start.group(2))), []).append(current)
            continue
        if _TASK_END.search(line):
            current = None
        elif current is not None:
            current.append(line)
    return segments


def structured_line(line: str) -> str:
    """A console line as the JSON line Airflow's log reader shows: time, level and event, and the logger and the
    key=value pairs the console renderer appends (`... [market_mlops.tasks.retrain] loc=retrain.py:88`) as fields."""
    import json

    match = _CONSOLE_LINE.match(line)
    if not match:
        return json.dumps({"event": line})
    stamp, level, event = match.groups()
    record: dict[str, str] = {"timestamp": stamp, "level": level.lower()}
    tail = _LOGGER_TAIL.search(event)
    if tail:
        event = event[:tail.start()]
        record["logger"] = tail.group(1)
        for pair in tail.group(2).split():
            key, value = pair.split("=", 1)
            record[key] = value
    return json.dumps({**record, "event": event.rstrip()})


def _server_line(line: str) -> bool:
    """A line the in-process API server logged while the task ran: in a deployment it is in the API server's log,
    not the task's."""
    tail = _LOGGER_TAIL.search(line)
    return bool(tail and tail.group(1).startswith("airflow.api_fastapi"))


def write_task_logs(output: str, dag_id: str, run_id: str) -> int:
    """Each task try of a dag.test run into the log file Airflow's reader looks for (`[logging] base_log_folder`
    and the log filename template); returns the files written."""
    from airflow.models import TaskInstance
    from airflow.utils.log.file_task_handler import FileTaskHandler
    from airflow.utils.session import create_session

    base = os.environ.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER")
    if not base:
        return 0
    handler = FileTaskHandler(base_log_folder=base)
    segments = task_segments(output)
    written = 0
    with create_session() as session:
        for ti in session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id):
            for try_number, lines in enumerate(segments.get((ti.task_id, ti.map_index), []), start=1):
                path = Path(base, handler._render_filename(ti, try_number, session=session))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(structured_line(line) + "\n" for line in lines if not _server_line(line)))
                written += 1
    return written


def _record_actual_start(run: DagRun) -> None:
    """dag.test() stamps a run as started at its logical date (a past session shows a duration of a year in the UI);
    the run started when its first task did."""
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        first = session.query(TaskInstance.start_date).filter(
            TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id,
            TaskInstance.start_date.isnot(None)).order_by(TaskInstance.start_date).first()
        if first is not None:
            session.query(DagRun).filter(DagRun.id == run.id).update({DagRun.start_date: first[0]})


def task_results(dag_id: str, run_id: str, task_id: str) -> list[Any]:
    """What a task of a run returned (every map index, in order), from Airflow's XCom table."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == run_id,
                                               XComModel.task_id == task_id, XComModel.key == "return_value"
                                               ).order_by(XComModel.map_index).all()
        return [XComModel.deserialize_value(row) for row in rows]


def last_run_id(dag_id: str) -> str | None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).first()
        return None if run is None else str(run.run_id)


def run_dag_locally(dag_id: str, day: dt.date, conf: dict[str, Any] | None = None) -> tuple[str, float, str]:
    """`market-mlops run`: one run of a suite DAG on the embedded stack, dated `day` (00:00 UTC): the session of
    that day for the session DAGs, the interval ending that day for the monthly and weekly ones. Returns the run's
    state, seconds and the log file (or, when it failed, the last error in it)."""
    env = configure_environment()
    ensure_airflow_db()
    from airflow.dag_processing.dagbag import DagBag

    log_path = os.path.join(env["MLOPS_HOME"], "runs.log")
    with output_captured() as parsing:  # Airflow's "Filling up the DagBag" belongs in the log, not on the terminal
        bag = DagBag(dag_folder=env["AIRFLOW__CORE__DAGS_FOLDER"])
    with open(log_path, "ab") as log_file:
        log_file.write(b"".join(parsing))
    if dag_id not in bag.dags:
        raise ValueError(f"unknown DAG {dag_id!r}: the suite's DAGs are {sorted(bag.dags)}")
    offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    moment = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    state, seconds = run_dag_in_process(bag.dags[dag_id], moment, conf or {}, log_path)
    with open(log_path, "rb") as fh:
        fh.seek(offset)
        lines = fh.read().decode(errors="replace").splitlines()
    # the failure callback's line (reason and what to do) first, else the last exception line
    reasons = [line for line in lines if FAILURE_MARK in line] or [
        line for line in lines if "Exception: " in line or "Error: " in line]
    if state == "success" or not reasons:
        return state, seconds, log_path
    match = _CONSOLE_LINE.match(reasons[-1].strip())
    reason = match.group(3) if match else reasons[-1].strip()
    tail = _LOGGER_TAIL.search(reason)
    return state, seconds, reason[:tail.start()] if tail else reason
