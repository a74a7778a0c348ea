"""The production path, run by Airflow's own scheduler on PostgreSQL (not dag.test()).

Airflow metadata DB and MLflow backend store in fresh PostgreSQL databases on 127.0.0.1:5432; `airflow standalone`
(api-server, scheduler, dag-processor, triggerer, LocalExecutor) started as a child; the REST API with a token.
1. `airflow backfill create` over the week of 4 July 2024 runs exactly the four trading sessions, and the dataset
   equals one built session by session.
2. A run triggered through the REST API ingests up to the last session of September 2025; its Asset event starts
   `model_retrain` (data-aware scheduling), which registers a model per pair on that data version.
3. SIGINT to the parent stops everything and leaves no process behind. One hang is Airflow's, not ours: in 3.3.2
   `LocalExecutor.end()` joins its workers without a bound and can wait forever (apache/airflow#67870, fixed by
   #67881 after 3.3.2). When the survivors show exactly that (the scheduler waiting on a child, a LocalExecutor
   worker alive) the test xfails with the process list; any other survivor fails it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.files import parquet_digests
from tests.horizons import ONE_HORIZON
from tests.postgres import PG, psql
from tests.servers import AirflowRest, free_port

pytestmark = pytest.mark.scheduler
REPO = Path(__file__).resolve().parents[2]
FAST = {"MLOPS__TRAINING__RF_ESTIMATORS": "60", "MLOPS__TRAINING__BOOST_ROUNDS": "80", "MLOPS__TRAINING__FOLDS": "3",
        "MLOPS__TRAINING__HISTORY_YEARS": "5", "MLOPS__TRAINING__MIN_TRAIN_ROWS": "200",
        "MLOPS__TRAINING__BOOTSTRAP_SAMPLES": "200", "MLOPS__UNIVERSE__SYMBOLS": "SPY,AAPL",
        "MLOPS__UNIVERSE__TIMEFRAMES": "d1", **ONE_HORIZON}


def _session_members(sid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":  # session id; zombies are already dead
                members.append(int(entry.name))
    return members


class Stack:
    def __init__(self, home: Path, env: dict[str, str], port: int) -> None:
        self.home, self.env, self.port = home, env, port
        self.base = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None
        self.stopping = False
        self.rest = AirflowRest(self.base, "test-pw")

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        out = subprocess.run([str(Path(sys.executable).parent / "airflow"), *args], env=self.env, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return out

    def start(self) -> None:
        log = open(self.home / "standalone.log", "wb")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), "standalone"], env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                health = json.loads(urllib.request.urlopen(f"{self.base}/api/v2/monitor/health", timeout=5).read())
                if all(health.get(k, {}).get("status") == "healthy" for k in ("metadatabase", "scheduler", "dag_processor")):
                    return
            except OSError:
                pass
            assert self.process.poll() is None, (self.home / "standalone.log").read_text()[-3000:]
            time.sleep(2)
        raise TimeoutError("airflow standalone did not become healthy in 180 s")

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        return self.rest(method, path, body)

    def runs(self, dag_id: str) -> list[dict]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]

    def wait(self, dag_id: str, predicate, timeout: float, what: str) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs(dag_id)
            failed = [r for r in runs if r["state"] == "failed" and predicate([r])]
            assert not failed, f"{dag_id} run {failed[0]['dag_run_id']} failed:\n{self.describe(dag_id)}"
            if predicate(runs):
                return runs
            time.sleep(3)
        raise TimeoutError(f"{what}:\n{self.describe(dag_id)}")

    def describe(self, dag_id: str) -> str:
        """Runs with their task instances (state, pool, duration) and the tail of the standalone log, for CI."""
        lines = []
        for r in self.runs(dag_id):
            lines.append(f"{r['dag_run_id']} {r['state']} start={r.get('start_date')}")
            tis = self.api("GET", f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(r['dag_run_id'])}/taskInstances")
            for ti in tis["task_instances"]:
                lines.append(f"  {ti['task_id']}[{ti.get('map_index', -1)}] {ti['state']} pool={ti.get('pool')} "
                             f"try={ti.get('try_number')} duration={ti.get('duration')}")
        tail = (self.home / "standalone.log").read_text(errors="replace").splitlines()[-40:]
        return "\n".join(lines + ["--- standalone.log tail ---", *tail])

    def stop(self, timeout: float = 120) -> list[int]:
        """SIGINT the parent (SIGTERM would orphan LocalExecutor workers); returns processes still alive."""
        if self.process is None or self.process.poll() is not None or self.stopping:
            return _session_members(self.process.pid) if self.process else []
        self.stopping = True  # signal once: a second SIGINT makes standalone exit without stopping its components
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 30
        while _session_members(self.process.pid) and time.monotonic() < deadline:
            time.sleep(1)
        return _session_members(self.process.pid)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    suffix = uuid.uuid4().hex[:8]
    airflow_db, mlflow_db, state_db = f"sched_airflow_{suffix}", f"sched_mlflow_{suffix}", f"sched_state_{suffix}"
    for db in (airflow_db, mlflow_db, state_db):
        psql(f"CREATE DATABASE {db}")
    home = tmp_path_factory.mktemp("scheduler")
    (home / "passwords.json").write_text(json.dumps({"admin": "test-pw"}))
    port = free_port()
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS"))}
    env.update(FAST)
    env.update({
        "PATH": f"{venv_bin}{os.pathsep}{env['PATH']}",
        "PYTHONPATH": str(REPO / "plugins"),
        "AIRFLOW_HOME": str(home / "airflow"), "MLOPS_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{PG}/{airflow_db}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"), "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__API__PORT": str(port), "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex, "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "MLOPS__STORAGE__MLFLOW_TRACKING_URI": f"postgresql+psycopg2://{PG}/{mlflow_db}",
        "MLOPS__STORAGE__STATE_URL": f"postgresql+psycopg2://{PG}/{state_db}",  # the suite's SQL store, as in production
        "GX_ANALYTICS_ENABLED": "False", "GIT_PYTHON_REFRESH": "quiet",
    })
    s = Stack(home, env, port)
    s.cli("db", "migrate")
    pools = subprocess.run([str(Path(sys.executable).parent / "market-mlops"), "pools"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert pools.returncode == 0, pools.stderr[-2000:]
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=env["MLOPS__STORAGE__MLFLOW_TRACKING_URI"]).search_experiments()  # create its tables once
    s.start()
    yield s
    leftovers = s.stop()
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    for db in (airflow_db, mlflow_db, state_db):
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    print(f"scheduler tier logs kept in {home}")


def test_backfill_runs_exactly_the_trading_sessions(stack, tmp_path, monkeypatch):
    stack.api("PATCH", "/dags/market_data_ingestion", {"is_paused": False})
    stack.cli("backfill", "create", "--dag-id", "market_data_ingestion", "--from-date", "2024-07-01", "--to-date", "2024-07-05")

    def done(runs):
        backfill = [r for r in runs if r["run_type"] == "backfill"]
        return len(backfill) >= 4 and all(r["state"] == "success" for r in backfill)

    runs = stack.wait("market_data_ingestion", done, 420, "backfill did not finish")
    backfill = sorted(r["logical_date"][:10] for r in runs if r["run_type"] == "backfill")
    assert backfill == ["2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05"]  # 4 July: exchange holiday

    # The same sessions ingested one by one, in process, into another home give the same partitions.
    from market_mlops.config import load_config
    from market_mlops.data import calendar
    from market_mlops.tasks import ingestion

    cfg = load_config(environ={**FAST, "MLOPS_HOME": str(tmp_path)})
    for day in [dt.date(2024, 7, 1), dt.date(2024, 7, 2), dt.date(2024, 7, 3), dt.date(2024, 7, 5)]:
        s = calendar.session("XNYS", day)
        fetched = ingestion.fetch_batch(s.interval_start.to_pydatetime(), s.close.to_pydatetime(), cfg=cfg)
        ingestion.version_dataset(ingestion.validate_batch(fetched, cfg=cfg), cfg=cfg)
    expected = parquet_digests(tmp_path / "data" / "dataset", "2024.parquet")
    assert expected and parquet_digests(stack.home / "data" / "dataset", "2024.parquet") == expected


def test_rest_trigger_and_the_asset_event_start_the_retrain(stack):
    from mlflow import MlflowClient

    stack.api("PATCH", "/dags/market_data_ingestion", {"is_paused": False})
    stack.api("PATCH", "/dags/model_retrain", {"is_paused": False})
    run = stack.api("POST", "/dags/market_data_ingestion/dagRuns", {
        "dag_run_id": "rest_history_load", "logical_date": "2025-09-30T20:30:00Z",
        "conf": {"history_start": "2019-01-02", "symbols": [], "timeframes": [], "source": None}})
    assert run["data_interval_end"].startswith("2025-09-30T20:00")
    stack.wait("market_data_ingestion",
               lambda runs: any(r["dag_run_id"] == "rest_history_load" and r["state"] == "success" for r in runs),
               300, "REST-triggered ingestion did not succeed")

    def retrained(runs):
        return any(r["run_type"] == "asset_triggered" and r["state"] == "success" for r in runs)

    runs = stack.wait("model_retrain", retrained, 600, "the Asset event did not start a successful retrain")
    asset_run = next(r for r in runs if r["run_type"] == "asset_triggered" and r["state"] == "success")
    client = MlflowClient(tracking_uri=stack.env["MLOPS__STORAGE__MLFLOW_TRACKING_URI"])
    names = sorted(m.name for m in client.search_registered_models())
    assert names == ["AAPL-d1-direction", "SPY-d1-direction"]
    # The cron run of the latest month may also have trained (catchup=False); pick the Asset-triggered one.
    versions = client.search_model_versions("name = 'SPY-d1-direction'")
    mine = [v for v in versions if client.get_run(v.run_id).data.tags.get("airflow.run_id") == asset_run["dag_run_id"]]
    assert len(mine) == 1
    tags = client.get_run(mine[0].run_id).data.tags
    assert tags["airflow.dag_id"] == "model_retrain" and tags["data.interval_end"].startswith("2025-10-01")
    from market_mlops.config import load_config
    from market_mlops.data.versioning import version_history

    history = version_history(load_config(environ=stack.env))
    september = [r for r in history if r["interval_end"].startswith("2025-09-30")]
    assert tags["data.version"] == september[-1]["md5"]  # the exact version the Asset event carried


def _processes(pids: list[int]) -> list[dict[str, str]]:
    """pid, parent, state, kernel wait channel and command line of each process still there."""
    found = []
    for pid in pids:
        proc = Path(f"/proc/{pid}")
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            found.append({"pid": str(pid), "ppid": fields[1], "state": fields[0], "wchan": (proc / "wchan").read_text(),
                          "cmd": (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]})
        except OSError:
            continue
    return found


def _is_localexecutor_join_hang(processes: list[dict[str, str]]) -> bool:
    """apache/airflow#67870: the scheduler blocked in waitpid (LocalExecutor.end() joining) and a worker alive."""
    scheduler_waits = any(" scheduler" in p["cmd"] and "LocalExecutor" not in p["cmd"] and p["wchan"] == "do_wait"
                          for p in processes)
    return scheduler_waits and any("worker -- LocalExecutor" in p["cmd"] for p in processes)


def test_sigint_stops_everything_and_leaves_no_process(stack):
    leftovers = stack.stop()
    survivors = _processes(leftovers)
    listing = "\n".join(" ".join(f"{k}={v}" for k, v in p.items()) for p in survivors)
    if survivors and _is_localexecutor_join_hang(survivors):
        pytest.xfail(f"Airflow 3.3.2 LocalExecutor.end() hang (apache/airflow#67870); still running:\n{listing}")
    tail = "\n".join((stack.home / "standalone.log").read_text(errors="replace").splitlines()[-30:])
    assert leftovers == [], f"still running after SIGINT:\n{listing}\n--- standalone.log tail ---\n{tail}"
    assert stack.process.returncode is not None
