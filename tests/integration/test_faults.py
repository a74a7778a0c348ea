"""Fault injection with real servers and real processes: nothing is lost or corrupted, retries are safe."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from market_mlops.config import ConfigError, load_config
from market_mlops.data.dataset import merge_bars
from market_mlops.data.storage import StorageFull
from market_mlops.data.synthetic import GeneratorSpec, generate_bars
from market_mlops.data.versioning import VersioningError, commit_and_push, materialize, read_version
from tests.files import parquet_digests

pytestmark = pytest.mark.integration
SPEC = GeneratorSpec(seed=2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_s3_endpoint_down_during_push_then_retry_succeeds(tmp_path, s3_endpoint):
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="fault-bucket")
    remote, root = "s3://fault-bucket/dvc", tmp_path / "data"
    merge_bars(root / "dataset", generate_bars(SPEC, ["SPY"], "d1", dt.date(2023, 1, 3), dt.date(2023, 12, 29)))
    commit_and_push(root, remote, endpoint)

    merge_bars(root / "dataset", generate_bars(SPEC, ["SPY"], "d1", dt.date(2024, 1, 2), dt.date(2024, 1, 5)))
    server.stop()  # the endpoint goes away
    with pytest.raises(VersioningError) as err:
        commit_and_push(root, remote, endpoint)
    assert "\n" not in str(err.value) and "check the remote and retry" in str(err.value)
    pending = read_version(root)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)  # back (same in-process state)
    server.start()
    try:
        version, pushed = commit_and_push(root, remote, endpoint)  # the task's retry
        assert version == pending and pushed >= 2
        restored = materialize(tmp_path / "elsewhere", version.md5, remote, endpoint)
        assert parquet_digests(restored) == parquet_digests(root / "dataset")  # remote and md5 consistent
    finally:
        server.stop()


WRITER = r"""
import sys, pandas as pd, numpy as np
from market_mlops.data.dataset import merge_bars
n = 3_000_000
ts = pd.date_range("2024-01-01", periods=n, freq="5s", tz="UTC")
frame = pd.DataFrame({"symbol": "SPY", "timeframe": "d1", "ts": ts, "open": 1.0, "high": 2.0, "low": 0.5,
                      "close": np.linspace(1, 2, n), "volume": 1.0})
print("writing", flush=True)
merge_bars(__import__("pathlib").Path(sys.argv[1]), frame)
print("done", flush=True)
"""


def test_writer_killed_mid_write_leaves_no_partial_file_and_rerun_is_identical(tmp_path):
    root = tmp_path / "dataset"
    batch = generate_bars(SPEC, ["SPY"], "d1", dt.date(2024, 1, 2), dt.date(2024, 3, 28))
    merge_bars(root, batch)
    before = parquet_digests(root)
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    time.sleep(1.0)  # inside the multi-second write of one large partition
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert parquet_digests(root) == before  # the visible partition is still the complete old file
    merge_bars(root, batch)  # the rerun
    assert parquet_digests(root) == before and not list(root.rglob(".tmp-*"))  # any temp file of the killed writer is gone


INGEST = r"""
import datetime as dt, sys
from market_mlops.data import calendar
from market_mlops.tasks import ingestion
day = dt.date.fromisoformat(sys.argv[1])
s = calendar.session("XNYS", day)
f = ingestion.fetch_batch(s.interval_start.to_pydatetime(), s.close.to_pydatetime())
print(ingestion.version_dataset(ingestion.validate_batch(f))["md5"])
"""


def test_two_ingestion_runs_at_once_both_succeed(tmp_path):
    env = {**os.environ, "MLOPS_HOME": str(tmp_path), "MLOPS__UNIVERSE__SYMBOLS": "SPY,AAPL", "MLOPS__UNIVERSE__TIMEFRAMES": "d1,h1"}
    procs = [subprocess.Popen([sys.executable, "-c", INGEST, day], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for day in ("2024-11-25", "2024-11-26")]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-1500:]
        assert "Unable to acquire lock" not in err
    cfg = load_config(environ=env)
    from market_mlops.data.versioning import version_history

    assert len(version_history(cfg)) == 2  # both runs logged, in the SQL store both processes share
    bars = pd.concat(pd.read_parquet(p) for p in (cfg.data_root / "dataset").rglob("*.parquet"))
    assert {ts.date().isoformat() for ts in bars["ts"]} == {"2024-11-25", "2024-11-26"}
    assert read_version(cfg.data_root).md5 in {o.strip().splitlines()[-1] for o, _ in outs}


@pytest.fixture
def tiny_volume(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.decode().strip()}): ENOSPC test needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_no_space_left_gives_a_clear_error_and_corrupts_nothing(tiny_volume):
    root = tiny_volume / "dataset"
    small = generate_bars(SPEC, ["SPY"], "d1", dt.date(2024, 1, 2), dt.date(2024, 1, 31))
    merge_bars(root, small)
    before = parquet_digests(root)
    big = generate_bars(SPEC, ["SPY"], "m15", dt.date(2024, 1, 2), dt.date(2024, 12, 31)).assign(timeframe="d1")
    with pytest.raises(StorageFull, match="no space left writing .*2024.parquet"):
        merge_bars(root, big)
    assert parquet_digests(root) == before  # the old partition is intact
    assert not list(root.rglob(".tmp-*"))  # the partial temp file was removed


def test_config_level_bad_input_is_refused_in_one_line(tmp_path):
    from market_mlops.tasks.ingestion import fetch_batch

    cfg = load_config(environ={"MLOPS_HOME": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"unknown symbol\(s\) \['NOPE'\]"):
        fetch_batch(dt.datetime(2024, 11, 26, tzinfo=dt.UTC), dt.datetime(2024, 11, 26, 21, tzinfo=dt.UTC), ["NOPE"], cfg=cfg)
    with pytest.raises(ConfigError, match="timeframes.d1.horizon"):
        load_config(environ={"MLOPS_HOME": str(tmp_path), "MLOPS__TIMEFRAMES__D1__HORIZON": "-1"})
    with pytest.raises(ConfigError, match="storage.s3_endpoint_url"):
        load_config(environ={"MLOPS_HOME": str(tmp_path), "MLOPS__STORAGE__S3_ENDPOINT_URL": "minio"})
    # An unreachable remote: the push fails with one line; the local dataset and its version stay as they were.
    root = tmp_path / "data"
    merge_bars(root / "dataset", generate_bars(SPEC, ["SPY"], "d1", dt.date(2024, 1, 2), dt.date(2024, 1, 31)))
    before = parquet_digests(root / "dataset")
    with pytest.raises(VersioningError) as err:
        commit_and_push(root, "s3://unreachable-bucket/dvc", f"http://127.0.0.1:{_free_port()}")
    assert "\n" not in str(err.value)
    assert parquet_digests(root / "dataset") == before
