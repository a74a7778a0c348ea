"""The drift history: one record per (model, drift check), which also tells when emergency retrains were triggered."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from market_mlops.config import PipelineConfig, get_config
from market_mlops.data.storage import append_jsonl, read_jsonl


def history_path(cfg: PipelineConfig) -> Path:
    return cfg.path("drift/history.jsonl")


def drift_history(cfg: PipelineConfig | None = None, model: str | None = None) -> list[dict[str, Any]]:
    records = read_jsonl(history_path(cfg or get_config()))
    return [r for r in records if model is None or r["model"] == model]


def record_drift_check(record: dict[str, Any], cfg: PipelineConfig) -> None:
    append_jsonl(record, history_path(cfg))


def emergency_triggers(model: str, cfg: PipelineConfig) -> list[dt.datetime]:
    """When emergency retrains of `model` were triggered (the interval ends of those drift checks)."""
    return [dt.datetime.fromisoformat(r["interval_end"]) for r in drift_history(cfg, model)
            if r.get("emergency_retrain_triggered")]
