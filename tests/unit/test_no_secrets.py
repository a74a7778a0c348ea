"""No secret-looking value is committed (tracked files only; tests use obvious placeholders on 127.0.0.1)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PATTERNS = {
    "AWS access key id": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN (RSA |EC |OPENSSH )?PRIVATE KEY-----"),
    "Slack token": re.compile(r"\bxox[abpr]-[0-9A-Za-z-]{10,}"),
    "Slack webhook": re.compile(r"hooks\.slack\.com/services/T[0-9A-Z]{6,}/B[0-9A-Z]{6,}/[0-9A-Za-z]{20,}"),
    "password in a URL": re.compile(r"://[A-Za-z0-9_.-]+:(?!\$\{)[^@/\s$]{6,}@(?!127\.0\.0\.1)"),
}


def _tracked_files() -> list[Path]:
    out = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True).stdout
    return [REPO / line for line in out.splitlines() if line and not line.endswith(".lock")]


def test_no_secret_looking_value_in_tracked_files():
    hits = []
    for path in _tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        for name, pattern in PATTERNS.items():
            for match in pattern.finditer(text):
                hits.append(f"{path.relative_to(REPO)}: {name}: {match.group(0)[:40]}")
    assert hits == []


def test_the_patterns_do_catch_secrets():
    samples = {"AWS access key id": "AKIA" + "ABCDEFGHIJKLMNOP", "Slack token": "xoxb-" + "123456789012-abcdef",
               "password in a URL": "postgresql://user:" + "hunter22secret@db.example.com/x"}
    for name, sample in samples.items():
        assert PATTERNS[name].search(sample), name
