"""What a test compares when it says "the same dataset": the bytes of every Parquet file, by relative path."""

from __future__ import annotations

import hashlib
from pathlib import Path


def parquet_digests(root: Path, pattern: str = "*.parquet") -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob(pattern))}
