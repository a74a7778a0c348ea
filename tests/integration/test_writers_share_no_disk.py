"""Two "hosts" (each its own MLOPS_HOME, nothing on disk in common) gate and publish sessions through S3 (moto's
server) and one PostgreSQL store: one gates and the other merges, each starts from the head the other published,
and a writer killed with SIGKILL in the middle of a merge leaves the head where it was; the retry on the other host
yields the dataset a single host gets ingesting the same sessions one by one."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid

import pytest

from market_mlops.config import load_config
from tests.files import parquet_digests
from tests.postgres import PG, psql

pytestmark = pytest.mark.integration

UNIVERSE = {"MLOPS__UNIVERSE__SYMBOLS": "SPY,AAPL", "MLOPS__UNIVERSE__TIMEFRAMES": "d1",
            "MLOPS__SOURCE__KIND": "synthetic"}
SESSIONS = ["2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05"]

TASK = r"""
import json, os, signal, sys
from market_mlops.data import calendar
from market_mlops.tasks import ingestion

step, arg = sys.argv[1], sys.argv[2]
if step == "gate":
    s = calendar.session("XNYS", __import__("datetime").date.fromisoformat(arg))
    print(json.dumps(ingestion.validate_batch(ingestion.fetch_batch(s.interval_start.to_pydatetime(),
                                                                    s.close.to_pydatetime()))))
elif step == "publish":
    print(json.dumps(ingestion.version_dataset(json.loads(arg), run_id="run-" + json.loads(arg)["interval_end"])))
elif step == "publish-killed":  # dies after merging half of the batch, before dvc add
    from market_mlops.data import dataset
    merge = dataset.merge_bars
    def half_then_die(root, batch, partitions=None):
        merge(root, batch.iloc[: len(batch) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    dataset.merge_bars = half_then_die
    ingestion.version_dataset(json.loads(arg), run_id="killed")
elif step == "head":
    from market_mlops.config import get_config
    from market_mlops.data.versioning import head_dataset
    print(json.dumps(str(head_dataset(get_config()))))
"""


@pytest.fixture
def hosts(tmp_path, s3_bucket):
    endpoint, bucket = s3_bucket
    db = f"mlops_hosts_{uuid.uuid4().hex[:8]}"
    psql(f"CREATE DATABASE {db}")
    shared = {**UNIVERSE, "MLOPS__STORAGE__STATE_URL": f"postgresql+psycopg2://{PG}/{db}",
              "MLOPS__STORAGE__DVC_REMOTE_URL": f"s3://{bucket}/dvc", "MLOPS__STORAGE__S3_ENDPOINT_URL": endpoint,
              "MLOPS__STORAGE__BATCHES_URL": f"s3://{bucket}/batches"}
    yield {name: {**os.environ, **shared, "MLOPS_HOME": str(tmp_path / name)} for name in ("a", "b")}
    psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def _on(env: dict[str, str], step: str, arg: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", TASK, step, arg], env=env, capture_output=True, text=True, timeout=300)


def _task(env: dict[str, str], step: str, arg: str):
    done = _on(env, step, arg)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_hosts_without_a_shared_disk_publish_what_one_host_would(hosts, tmp_path):
    from market_mlops.data import calendar
    from market_mlops.data.versioning import version_history
    from market_mlops.tasks import ingestion

    a, b = hosts["a"], hosts["b"]
    gated = _task(a, "gate", SESSIONS[0])
    assert gated["staged"].startswith("s3://")  # where every host reads it
    first = _task(b, "publish", json.dumps(gated))  # gated on a, merged on b
    second = _task(a, "publish", json.dumps(_task(a, "gate", SESSIONS[1])))  # a had no dataset: starts from b's head
    third = _task(b, "publish", json.dumps(_task(b, "gate", SESSIONS[2])))  # b was one version behind a
    assert len({first["md5"], second["md5"], third["md5"]}) == 3
    assert second["rows_added"] and third["rows_added"]

    gated = _task(a, "gate", SESSIONS[3])
    killed = _on(a, "publish-killed", json.dumps(gated))
    assert killed.returncode == -9, killed.stderr[-2000:]
    cfg_b = load_config(environ=hosts["b"])
    assert [r["md5"] for r in version_history(cfg_b)][-1] == third["md5"]  # the head did not move
    assert "killed" not in {r["run_id"] for r in version_history(cfg_b)}
    fourth = _task(b, "publish", json.dumps(gated))  # the retry, on the other host (the lock died with the writer)

    # One host ingesting the same sessions one by one (local remote, SQLite) ends at the same md5 and bytes.
    alone = load_config(environ={**UNIVERSE, "MLOPS_HOME": str(tmp_path / "alone")})
    for day in SESSIONS:
        s = calendar.session("XNYS", dt.date.fromisoformat(day))
        fetched = ingestion.fetch_batch(s.interval_start.to_pydatetime(), s.close.to_pydatetime(), cfg=alone)
        expected = ingestion.version_dataset(ingestion.validate_batch(fetched, cfg=alone), cfg=alone)
    assert fourth["md5"] == expected["md5"]
    on_a = _task(a, "head", "-")  # the killed host's half merge gives way to the published head
    assert parquet_digests(tmp_path / "a" / "data" / "dataset") == parquet_digests(alone.data_root / "dataset")
    assert on_a.endswith("dataset") and not (tmp_path / "a" / "data" / ".merge-in-progress").exists()
