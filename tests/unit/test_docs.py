"""The docs site builds in strict mode (a broken link or anchor fails), every `market-mlops` command and `make`
target the README and the docs name exists, and the README stays a page a newcomer reads in five minutes."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_the_site_builds_strict_with_the_generated_configuration_reference(tmp_path):
    out = subprocess.run([str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "-d", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    reference = (tmp_path / "configuration" / "index.html").read_text()
    from market_mlops.config import Training

    for key in Training.model_fields:  # every training key is in the generated tables
        assert f"<code>training.{key}</code>" in reference, key


def _cli_commands() -> set[str]:
    from market_mlops.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), flags=re.M))


def test_every_command_and_make_target_the_docs_name_exists():
    commands, targets = _cli_commands(), _make_targets()
    named_commands: dict[str, set[str]] = {}
    named_targets: dict[str, set[str]] = {}
    for page in PAGES:
        text = page.read_text()
        for command in re.findall(r"market-mlops ([a-z][a-z-]*)", text):
            named_commands.setdefault(command, set()).add(page.name)
        for target in re.findall(r"\bmake ([a-z][a-z-]*)", text):
            named_targets.setdefault(target, set()).add(page.name)
    assert len(named_commands) >= 5 and len(named_targets) >= 5  # the patterns still find what the pages name
    assert {c: p for c, p in named_commands.items() if c not in commands} == {}
    assert {t: p for t, p in named_targets.items() if t not in targets} == {}


def test_the_readme_fits_on_two_screens_and_links_every_docs_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for page in sorted((REPO / "docs").glob("*.md")):
        assert f"docs/{page.name}" in readme, f"README does not link docs/{page.name}"
