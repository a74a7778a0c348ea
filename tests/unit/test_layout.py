"""The package layout is the architecture: imports point one way, and DAG files only reach the task layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "include" / "market_mlops"
EVERYTHING = {"config", "contracts", "orchestration", "state", "data", "model", "registry", "monitoring", "ui", "tasks",
              "analysis", "dev", "cli", "secrets_check", "celery_worker"}
# What each part may import from the package (its own part included). Domain packages never import `tasks`,
# `dev` or the command line; `tasks` composes the domains and is what DAGs and commands call.
ALLOWED = {
    "config": {"config"},
    "contracts": {"contracts"},
    "secrets_check": {"secrets_check"},  # deployment start-up check: the standard library only
    "celery_worker": {"celery_worker"},  # Celery's settings: names the task modules it preloads, imports none
    "state": {"config", "state"},  # the SQL store: a base every domain may write its records to
    "data": {"config", "contracts", "state", "data"},
    "model": {"config", "contracts", "data", "model"},
    "registry": {"config", "contracts", "state", "data", "model", "registry"},
    "monitoring": {"config", "contracts", "state", "data", "model", "monitoring"},
    "orchestration": {"config", "monitoring", "orchestration"},
    "ui": {"config", "contracts", "state", "data", "registry", "monitoring", "ui"},  # pages read, never decide
    "tasks": EVERYTHING - {"analysis", "dev", "cli"},
    "analysis": EVERYTHING - {"dev", "cli"},  # the replay: runs the tasks' own decisions in process, no DAG calls it
    "dev": EVERYTHING,
    "cli": EVERYTHING,
}
DAG_MAY_IMPORT = {"orchestration", "contracts", "tasks"}


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "market_mlops" and len(parts) > 1 else None


def imported_parts(path: Path) -> set[str]:
    """Parts of the package a file imports, at top level, inside functions and under TYPE_CHECKING alike."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "market_mlops":
                found |= {alias.name for alias in node.names}
            elif (part := _part(node.module)) is not None:
                found.add(part)
        elif isinstance(node, ast.Import):
            found |= {p for alias in node.names if (p := _part(alias.name)) is not None}
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_one_way(path):
    part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    assert part in ALLOWED, f"{path.name}: a new top-level part; add it to the layering in this test and the README"
    wrong = imported_parts(path) - ALLOWED[part]
    assert not wrong, f"{path.relative_to(REPO)} ({part}) imports {sorted(wrong)}; allowed: {sorted(ALLOWED[part])}"


@pytest.mark.parametrize("path", sorted((REPO / "dags").glob("*.py")), ids=lambda p: p.name)
def test_dag_files_call_the_task_layer_only(path):
    wrong = imported_parts(path) - DAG_MAY_IMPORT
    assert not wrong, f"{path.name} imports market_mlops {sorted(wrong)}: put the call in market_mlops.tasks"


def test_the_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from market_mlops.tasks.retrain import retrain_model\n")
    assert imported_parts(bad) - ALLOWED["model"] == {"tasks"}
