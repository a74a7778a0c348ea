"""Atomic, deterministic file writes: a reader never sees a partial file, and the same input gives the same bytes."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

TMP_PREFIX = ".tmp-"


class StorageFull(OSError):
    """The data volume has no space left; nothing was replaced."""

    hint = 'free space on the data volume (nothing was replaced), then clear the task'


def _replace_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise StorageFull(errno.ENOSPC, f"no space left writing {path} (free space on that volume, then retry)") from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_parquet(frame: pd.DataFrame, fh: BinaryIO) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, fh, compression="zstd", row_group_size=max(len(frame), 1))


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Parquet with fixed settings (zstd, no index, one row group) so equal frames give equal bytes."""
    _replace_atomically(path, lambda fh: _write_parquet(frame, fh))


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """The bytes `write_parquet_atomic` writes (for an object store)."""
    import io

    buffer = io.BytesIO()
    _write_parquet(frame, buffer)
    return buffer.getvalue()


def write_bytes_atomic(data: bytes, path: Path) -> None:
    _replace_atomically(path, lambda fh: fh.write(data))


def write_json_atomic(payload: Any, path: Path) -> None:
    write_bytes_atomic(json.dumps(payload, indent=2, sort_keys=True, default=str).encode(), path)


def remove_stale_temp_files(root: Path) -> int:
    """Temp files left by a killed writer are never visible as data; remove them before the next write."""
    stale = list(root.rglob(f"{TMP_PREFIX}*")) if root.exists() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes on this host (DVC steps, checkouts of one version)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def directory_lock(root: Path) -> Iterator[None]:
    """Exclusive between read-modify-write upserts into `root` (and its DVC snapshot); the lock file sits beside
    `root`, outside the data, so it is never versioned."""
    with file_lock(root.with_name(f".{root.name}.lock")):
        yield
