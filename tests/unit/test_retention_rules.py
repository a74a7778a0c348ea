"""Retention's decisions: which model versions are archived, and how far back rows are kept."""

from __future__ import annotations

import datetime as dt

from market_mlops.config import load_config
from market_mlops.monitoring.archive import months_before
from market_mlops.registry.retention import versions_to_archive


def test_the_default_keeps_champion_challenger_the_replaced_version_and_the_newest_five():
    keep = load_config().retention.keep_versions
    assert keep == 5
    versions = list(range(1, 21))
    # champion v3 (rolled back to), it replaced v12; challenger v20
    assert versions_to_archive(versions, champion=3, challenger=20, replaced=12, keep_last=keep) == [
        1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15]
    assert versions_to_archive([1, 2, 3], champion=3, challenger=3, replaced=2, keep_last=keep) == []
    assert versions_to_archive([4, 1, 3, 2], champion=None, challenger=None, replaced=None, keep_last=1) == [1, 2, 3]


def test_rows_are_kept_for_calendar_months():
    assert load_config().retention.archive_after_months == 12
    at = dt.datetime(2025, 3, 31, 6, tzinfo=dt.UTC)
    assert months_before(at, 1) == dt.datetime(2025, 2, 28, 6, tzinfo=dt.UTC)
    assert months_before(at, 12) == dt.datetime(2024, 3, 31, 6, tzinfo=dt.UTC)


def test_a_fleet_of_old_rows_is_counted_and_archived_per_model_on_sqlite(tmp_path):
    """1,200 models with kept versions: one OR over them passed SQLite's expression depth limit (1,000)."""
    import pandas as pd

    from market_mlops.monitoring.archive import (
        ARCHIVED_TABLES,
        archive_old_rows,
        count_old_rows,
        read_archive,
    )
    from market_mlops.monitoring.forecasts import load_forecasts, upsert_forecasts

    cfg = load_config(environ={"MLOPS_HOME": str(tmp_path)})
    old, new = pd.Timestamp("2024-01-02", tz="UTC"), pd.Timestamp("2025-06-02", tz="UTC")
    models = [f"S{i:04d}-d1-direction" for i in range(1200)]
    rows = [{"symbol": m.split("-")[0], "timeframe": "d1", "ts": ts, "horizon": 5, "model_name": m,
             "model_version": version, "p_bearish": 0.3, "p_neutral": 0.3, "p_bullish": 0.4, "predicted": "BULLISH"}
            for m in models for version in ("1", "2") for ts in (old, new)]
    rows += [{**rows[0], "model_name": "GONE-d1-direction", "symbol": "GONE"}]  # a model the registry no longer has
    upsert_forecasts(pd.DataFrame(rows), cfg)
    kept = {m: {"2"} for m in models}  # v1 of every model is archived, v2 kept; GONE keeps nothing
    forecasts = ARCHIVED_TABLES[0]
    before = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert count_old_rows(forecasts, before, kept, cfg) == 1200 + 1
    assert archive_old_rows(forecasts, before, kept, cfg) == 1201
    assert count_old_rows(forecasts, before, kept, cfg) == 0
    archived = read_archive("forecasts", cfg)
    assert len(archived) == 1201 and set(archived["model_version"]) == {"1"}
    left = load_forecasts("S0007", "d1", cfg)
    assert sorted(zip(left["model_version"], left["ts"].dt.year, strict=True)) == [("1", 2025), ("2", 2024), ("2", 2025)]


def test_retention_is_a_dry_run_unless_the_form_or_the_deployment_says_apply():
    from market_mlops.tasks.retention import retention_applies

    cfg = load_config()
    assert cfg.retention.apply_on_schedule is False
    assert not retention_applies(False, "DagRunType.MANUAL", cfg)
    assert not retention_applies(False, "DagRunType.SCHEDULED", cfg)  # the default deployment: scheduled runs plan only
    assert retention_applies(True, "DagRunType.MANUAL", cfg)
    on_schedule = load_config(environ={"MLOPS__RETENTION__APPLY_ON_SCHEDULE": "true"})
    assert retention_applies(False, "DagRunType.SCHEDULED", on_schedule)
    assert not retention_applies(False, "DagRunType.MANUAL", on_schedule)  # a triggered run: its form decides


def test_the_model_retention_form_defaults_to_a_dry_run():
    import ast
    from pathlib import Path

    from market_mlops.config import REPO_ROOT

    tree = ast.parse(Path(REPO_ROOT / "dags" / "model_retention.py").read_text())
    params = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Param"]
    apply = [p for p in params if any(isinstance(k.value, ast.Constant) and k.value.value == "boolean"
                                      for k in p.keywords)]
    assert len(apply) == 1 and apply[0].args[0].value is False


def test_data_versions_are_aged_by_the_data_clock_not_the_wall_clock():
    from market_mlops.tasks.retention import data_clock

    today = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
    ends = ["2025-10-31T21:00:00+00:00", "2025-11-14T21:00:00+00:00", ""]
    assert data_clock(today, ends) == dt.datetime(2025, 11, 14, 21, tzinfo=dt.UTC)
    assert data_clock(dt.datetime(2025, 11, 1, tzinfo=dt.UTC), ends) == dt.datetime(2025, 11, 1, tzinfo=dt.UTC)
    assert data_clock(today, []) == today
