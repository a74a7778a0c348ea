"""The drift history: one record per (model, version, drift check) in the suite's SQL store (table `drift_checks`),
which also tells when emergency retrains were triggered: the cooldown reads it, whichever host ran the checks."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from market_mlops.config import PipelineConfig, get_config


def drift_history(cfg: PipelineConfig | None = None, model: str | None = None) -> list[dict[str, Any]]:
    from market_mlops.state import store, tables

    found = store.records(tables.drift_checks, cfg or get_config(), **({"model": model} if model else {}))
    return sorted(found, key=lambda r: r["interval_end"])


def recent_histories(models: list[str], cfg: PipelineConfig, last: int = 250) -> dict[str, list[dict[str, Any]]]:
    """{model: its last `last` checks, oldest first} for a shard's models in one query (the reports' charts)."""
    from sqlalchemy import select

    from market_mlops.state import store, tables

    checks = tables.drift_checks
    found: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
    query = select(checks.c.model, checks.c.record).where(checks.c.model.in_(models)).order_by(checks.c.id)
    for row in store.frame(query, cfg, what=" of drift_checks (report history)"):
        found[row["model"]].append(json.loads(row["record"]) if isinstance(row["record"], str) else dict(row["record"]))
    return {m: sorted(rows, key=lambda r: r["interval_end"])[-last:] for m, rows in found.items()}


def record_drift_check(record: dict[str, Any], cfg: PipelineConfig) -> None:
    """Store one check; the same check again (a retried task) replaces its row."""
    record_drift_checks([record], cfg)


def record_drift_checks(records: list[dict[str, Any]], cfg: PipelineConfig) -> None:
    """Store a shard's checks in one statement; the same checks again (a retried task) replace their rows."""
    from market_mlops.state import store, tables

    store.upsert(tables.drift_checks, [{
        "model": r["model"], "model_version": str(r.get("version", "")), "interval_end": r["interval_end"],
        "band": str(r.get("band", "")), "emergency_retrain_triggered": bool(r.get("emergency_retrain_triggered")),
        "record": r} for r in records], cfg)


def emergency_triggers(model: str, cfg: PipelineConfig) -> list[dt.datetime]:
    """When emergency retrains of `model` were triggered (the interval ends of those drift checks)."""
    return [dt.datetime.fromisoformat(r["interval_end"]) for r in drift_history(cfg, model)
            if r.get("emergency_retrain_triggered")]


def emergency_triggers_of_fleet(after: dt.datetime, until: dt.datetime,
                                cfg: PipelineConfig) -> dict[str, list[dt.datetime]]:
    """{model: times its emergency retrains were triggered in (after, until]} for every model, in one query (a drift
    check of thousands of champions reads its cooldowns once, not once per model)."""
    from sqlalchemy import select

    from market_mlops.state import store, tables

    checks = tables.drift_checks
    query = select(checks.c.model, checks.c.interval_end).where(checks.c.emergency_retrain_triggered.is_(True))
    found: dict[str, list[dt.datetime]] = {}
    for row in store.frame(query, cfg, what=" of drift_checks (emergency retrains)"):
        when = dt.datetime.fromisoformat(row["interval_end"])
        if after < when <= until:
            found.setdefault(row["model"], []).append(when)
    return found
