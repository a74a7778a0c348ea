"""Promotion by alias (`champion`, `challenger`) with an audit trail.

Moving an alias is one registry call; the replaced version keeps its artifacts, so a rollback is moving the alias
back. Every move is a row of the suite's SQL store (table `alias_moves`: who, when, model, alias, from, to, why),
which is what a rollback reads to find the version a champion replaced.
"""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import os
from typing import Any

from market_mlops.config import PipelineConfig, get_config
from market_mlops.registry import store
from market_mlops.state import store as state
from market_mlops.state import tables

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


def move_alias(name: str, alias: str, version: str, why: str, cfg: PipelineConfig | None = None) -> str | None:
    """Point `alias` at `version` (one registry call) and append the move to the audit trail; returns the old version."""
    cfg = cfg or get_config()
    previous = alias_version(name, alias, cfg)
    if previous == str(version):
        return previous
    store.client(cfg).set_registered_model_alias(name, alias, str(version))
    state.upsert(tables.alias_moves, [{
        "model": name, "alias": alias, "moved_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
        "from_version": previous, "to_version": str(version), "who": _who(), "why": why}], cfg)
    log.info("alias %s of %s: %s -> %s (%s)", alias, name, previous, version, why)
    return previous


def alias_history(name: str, alias: str = CHAMPION, cfg: PipelineConfig | None = None) -> list[dict[str, Any]]:
    """Every move of `alias` on `name`, oldest first: {when, who, model, alias, from, to, why}."""
    return [{"when": r["moved_at"], "who": r["who"], "model": r["model"], "alias": r["alias"], "from": r["from_version"],
             "to": r["to_version"], "why": r["why"]}
            for r in state.rows(tables.alias_moves, cfg, order_by="moved_at", model=name, alias=alias)]


def replaced_version(name: str, champion: str, cfg: PipelineConfig | None = None) -> str | None:
    """The version `champion` replaced when it last became champion (a rollback's default target), or None."""
    moves = [m for m in alias_history(name, CHAMPION, cfg) if m["to"] == str(champion) and m["from"]]
    return str(moves[-1]["from"]) if moves else None
