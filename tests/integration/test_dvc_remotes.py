"""DVC push and pull of the dataset against a real S3 endpoint (moto server on 127.0.0.1) and a local remote."""

from __future__ import annotations

import datetime as dt
import hashlib

import boto3
import pytest

from market_mlops.data.dataset import merge_bars
from market_mlops.data.synthetic import GeneratorSpec, generate_bars
from market_mlops.data.versioning import commit_and_push, materialize, read_version
from tests.files import parquet_digests

pytestmark = pytest.mark.integration


def _dir_md5(root):
    """DVC's directory md5: md5 of the JSON list of {relpath, md5} entries, sorted by path."""
    import json

    entries = [{"md5": hashlib.md5(p.read_bytes()).hexdigest(), "relpath": str(p.relative_to(root))}
               for p in sorted(root.rglob("*.parquet"), key=lambda p: str(p.relative_to(root)))]
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


@pytest.mark.parametrize("remote_kind", ["s3", "local"])
def test_push_then_pull_a_recorded_version_restores_its_bytes(tmp_path, remote_kind, request):
    if remote_kind == "s3":
        endpoint, bucket = request.getfixturevalue("s3_bucket")
        remote = f"s3://{bucket}/dvc"
    else:
        endpoint, remote = None, str(tmp_path / "remote")
    root = tmp_path / "data"
    spec = GeneratorSpec(seed=2)
    merge_bars(root / "dataset", generate_bars(spec, ["SPY", "AAA"], "d1", dt.date(2023, 1, 3), dt.date(2023, 12, 29)))
    first, pushed_first = commit_and_push(root, remote, endpoint)
    first_bytes = parquet_digests(root / "dataset")
    assert first.md5 == read_version(root).md5 == _dir_md5(root / "dataset")  # md5 read back equals the files'
    assert pushed_first == first.files + 1  # every file plus the .dir manifest

    merge_bars(root / "dataset", generate_bars(spec, ["SPY", "AAA"], "d1", dt.date(2024, 1, 2), dt.date(2024, 1, 5)))
    second, pushed_second = commit_and_push(root, remote, endpoint)
    assert second.md5 != first.md5
    assert pushed_second == 3  # two new yearly partitions + the manifest: cost follows the new bars

    if remote_kind == "s3":
        keys = [o["Key"] for o in boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=bucket)["Contents"]]
        assert any(k.endswith(first.md5.removesuffix(".dir")[2:] + ".dir") for k in keys)

    # A fresh machine: a new workspace with an empty cache pulls the first version from the remote.
    other = tmp_path / "elsewhere"
    restored = materialize(other, first.md5, remote, endpoint)
    assert parquet_digests(restored) == first_bytes
