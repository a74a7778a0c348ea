"""S3 the Airflow way: with no AWS_* variables and no `storage.s3_endpoint_url`, the landing listing, the batches
and the DVC remote find their endpoint, region and keys in the Airflow connection MLOPS_S3_CONN_ID names (an `aws`
connection, here from AIRFLOW_CONN_*), against a real S3 endpoint (moto's server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

SCRIPT = r"""
import datetime as dt, json, sys
from market_mlops.config import get_config
from market_mlops.data.object_store import list_s3, read_bytes, write_bytes
from market_mlops.data.synthetic import GeneratorSpec, generate_bars
from market_mlops.data.dataset import merge_bars
from market_mlops.data.versioning import commit_and_push, materialize
bucket = sys.argv[1]
write_bytes(f"s3://{bucket}/batches/x.txt", b"hello")
cfg = get_config()
merge_bars(cfg.data_root / "dataset", generate_bars(GeneratorSpec(seed=1), ["SPY"], "d1", dt.date(2024, 1, 2), dt.date(2024, 1, 31)))
version, pushed = commit_and_push(cfg.data_root, cfg.dvc_remote_url, cfg.storage.s3_endpoint_url)
restored = materialize(cfg.home / "elsewhere", version.md5, cfg.dvc_remote_url, cfg.storage.s3_endpoint_url)
print(json.dumps({"read": read_bytes(f"s3://{bucket}/batches/x.txt").decode(), "pushed": pushed,
                  "objects": len(list_s3(f"s3://{bucket}/dvc/")), "restored": len(list(restored.rglob("*.parquet")))}))
"""


def test_credentials_endpoint_and_region_come_from_the_airflow_connection(s3_bucket, tmp_path):
    endpoint, bucket = s3_bucket
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLOPS", "AIRFLOW_CONN"))}
    env.update({"MLOPS_HOME": str(tmp_path), "MLOPS__STORAGE__DVC_REMOTE_URL": f"s3://{bucket}/dvc",
                "MLOPS_S3_CONN_ID": "mlops_s3",
                "AIRFLOW_CONN_MLOPS_S3": json.dumps({"conn_type": "aws", "login": "testing", "password": "testing",
                                                     "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}})})
    done = subprocess.run([sys.executable, "-c", SCRIPT, bucket], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["read"] == "hello" and result["pushed"] >= 2 and result["objects"] >= 2 and result["restored"] == 1

    env["AIRFLOW_CONN_MLOPS_S3"] = json.dumps({"conn_type": "aws", "login": "testing", "password": "testing"})
    refused = subprocess.run([sys.executable, "-c", SCRIPT, bucket], env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0  # without the connection's endpoint it goes to AWS, which is not there
