"""Promotion by alias (`champion`, `challenger`) with an audit trail.

Moving an alias is one registry call; the replaced version keeps its artifacts, so a rollback is moving the alias
back. Every move is appended to `<MLOPS_HOME>/registry/alias_audit.jsonl` (who, when, model, alias, from, to, why),
which is what a rollback reads to find the version a champion replaced.
"""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import os
from pathlib import Path
from typing import Any

from market_mlops.config import PipelineConfig, get_config
from market_mlops.data.storage import append_jsonl, read_jsonl
from market_mlops.registry import store

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"


def alias_version(name: str, alias: str, cfg: PipelineConfig | None = None) -> str | None:
    """The version `alias` points at; None when the model or the alias does not exist. An unreachable or refusing
    server raises: an outage must fail the task, never read as "no champion"."""
    import mlflow.exceptions

    try:
        model = store.client(cfg).get_registered_model(name)
    except mlflow.exceptions.MlflowException as error:
        if store.does_not_exist(error):
            return None
        raise
    version = (model.aliases or {}).get(alias)
    return None if version is None else str(version)


def _who() -> str:
    run_id = os.environ.get("AIRFLOW_CTX_DAG_RUN_ID")
    return f"airflow:{os.environ.get('AIRFLOW_CTX_DAG_ID')}/{run_id}" if run_id else getpass.getuser()


def audit_path(cfg: PipelineConfig | None = None) -> Path:
    return (cfg or get_config()).path("registry/alias_audit.jsonl")


def move_alias(name: str, alias: str, version: str, why: str, cfg: PipelineConfig | None = None) -> str | None:
    """Point `alias` at `version` (one registry call) and append the move to the audit trail; returns the old version."""
    cfg = cfg or get_config()
    previous = alias_version(name, alias, cfg)
    if previous == str(version):
        return previous
    store.client(cfg).set_registered_model_alias(name, alias, str(version))
    append_jsonl({"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "who": _who(), "model": name,
                  "alias": alias, "from": previous, "to": str(version), "why": why}, audit_path(cfg))
    log.info("alias %s of %s: %s -> %s (%s)", alias, name, previous, version, why)
    return previous


def alias_history(name: str, alias: str = CHAMPION, cfg: PipelineConfig | None = None) -> list[dict[str, Any]]:
    return [r for r in read_jsonl(audit_path(cfg)) if r["model"] == name and r["alias"] == alias]
