"""Retention end to end: three monthly retrains of one model, a drift check, then `market-mlops retention` (a dry run
that changes nothing) and the `model_retention` DAG (applied): the oldest version is archived, its old forecasts and
drift checks move to Parquet, the data version only it used leaves the DVC remote, and rollback still works to every
kept version."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from market_mlops.config import get_config
from market_mlops.data.calendar import session

from .conftest import market_mlops, run_dag

pytestmark = [pytest.mark.e2e, pytest.mark.training]
FAST = {"MLOPS__TRAINING__RF_ESTIMATORS": "60", "MLOPS__TRAINING__BOOST_ROUNDS": "80", "MLOPS__TRAINING__FOLDS": "3",
        "MLOPS__TRAINING__HISTORY_YEARS": "5", "MLOPS__TRAINING__MIN_TRAIN_ROWS": "200",
        "MLOPS__TRAINING__BOOTSTRAP_SAMPLES": "200", "MLOPS__UNIVERSE__SYMBOLS": "SPY",
        "MLOPS__UNIVERSE__TIMEFRAMES": "d1",
        # Three versions are enough to have one to archive when only the newest is kept beyond the champion, the
        # challenger and the version the champion replaced (the default keeps 5: see the unit test of the rule), and a
        # month of age is enough for the first version's forecasts to be archived (default 12).
        "MLOPS__RETENTION__KEEP_VERSIONS": "1", "MLOPS__RETENTION__ARCHIVE_AFTER_MONTHS": "1"}
NAME = "SPY-d1-direction"


def _after_close(day: dt.date) -> dt.datetime:
    return session("XNYS", day).close.to_pydatetime() + dt.timedelta(minutes=45)


def _remote_objects(cfg) -> set[str]:
    return {str(p) for p in Path(cfg.dvc_remote_url).rglob("*") if p.is_file()}


def test_retention_archives_old_versions_rows_and_data_and_rollback_still_works(dagbag, mlops_home, monkeypatch,
                                                                               tmp_path):
    from market_mlops.data.versioning import VersioningError, materialize, version_history
    from market_mlops.monitoring.archive import read_archive
    from market_mlops.monitoring.forecasts import load_forecasts
    from market_mlops.monitoring.history import drift_history
    from market_mlops.registry import store

    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    ingest, retrain = dagbag.dags["market_data_ingestion"], dagbag.dags["model_retrain"]
    conf = {"force_promotion": True, "until": None, "reason": "test", "search_trials": 0}
    for start, last, month in (("2019-01-02", dt.date(2025, 9, 30), 10), ("2025-10-01", dt.date(2025, 10, 31), 11),
                               ("2025-11-03", dt.date(2025, 11, 28), 12)):
        assert run_dag(ingest, _after_close(last), {"history_start": start}) == "success"
        if month == 11:  # v1 forecasts October and is checked once before v2 replaces it
            assert run_dag(dagbag.dags["drift_check"], _after_close(last), {}) == "success"
        assert run_dag(retrain, dt.datetime(2025, month, 1, tzinfo=dt.UTC), conf) == "success"
    cfg = get_config()
    c = store.client()
    versions = {int(v.version): v for v in c.search_model_versions(f"name = '{NAME}'")}
    assert sorted(versions) == [1, 2, 3] and c.get_registered_model(NAME).aliases == {"champion": 3, "challenger": 3}
    data = {v: versions[v].tags["data.version"] for v in versions}
    assert len(set(data.values())) == 3
    v1_forecasts = load_forecasts("SPY", "d1", cfg, model_version="1")
    assert len(v1_forecasts) > 10 and [str(r["version"]) for r in drift_history(cfg)] == ["1"]
    objects = _remote_objects(cfg)

    # The dry run: the plan, and nothing changed.
    dry = market_mlops("retention", "--as-of", "2025-12-15")
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout and "2 versions kept" in dry.stdout and "would archive 1" in dry.stdout
    assert f"{NAME}: v1" in dry.stdout
    assert f"forecasts older than 2025-11-15 of versions not kept: would archive {len(v1_forecasts)} rows" in dry.stdout
    assert "drift_checks older than 2025-11-15 of versions not kept: would archive 1 rows" in dry.stdout
    assert "would collect 1" in dry.stdout
    assert "archived" not in c.get_model_version(NAME, "1").tags
    assert len(load_forecasts("SPY", "d1", cfg, model_version="1")) == len(v1_forecasts)
    assert _remote_objects(cfg) == objects

    # Applied by the weekly DAG, as of its interval's end (Sunday 2025-12-14 05:00 UTC).
    retention = dagbag.dags["model_retention"]
    assert run_dag(retention, dt.datetime(2025, 12, 14, 5, tzinfo=dt.UTC), {"apply": True}) == "success"
    assert c.get_model_version(NAME, "1").tags["archived"].startswith("2025-12-14")
    assert all("archived" not in c.get_model_version(NAME, v).tags for v in ("2", "3"))
    import mlflow

    def model_files(version: str) -> list[str]:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{NAME}/{version}",
                                                        dst_path=str(tmp_path / f"v{version}"))
        except Exception as error:  # noqa: BLE001 - what a missing folder raises differs by store
            return [f"error: {error}"]
        return sorted(p.name for p in Path(local).rglob("*") if p.is_file())

    assert model_files("1") == []  # its model files are gone
    assert "checksums.json" in model_files("2")
    assert load_forecasts("SPY", "d1", cfg, model_version="1").empty and drift_history(cfg) == []
    archived = read_archive("forecasts", cfg)
    assert sorted(pd.to_datetime(archived["ts"], utc=True)) == sorted(v1_forecasts["ts"])
    assert set(archived["model_version"]) == {"1"} and len(read_archive("drift_checks", cfg)) == 1
    removed = objects - _remote_objects(cfg)
    assert removed and not (_remote_objects(cfg) - objects)
    assert [r["md5"] for r in version_history(cfg)] == [data[2], data[3]]
    with pytest.raises(VersioningError):
        materialize(tmp_path / "fresh", data[1], cfg.dvc_remote_url)
    assert materialize(tmp_path / "fresh-2", data[2], cfg.dvc_remote_url).is_dir()  # a kept version is whole

    # Rollback: refused to the archived version with the reason, then to the version the champion replaced.
    refused = market_mlops("rollback", "--symbol", "SPY", "--timeframe", "d1", "--to-version", "1")
    assert refused.returncode == 1 and "v1 was archived by retention on 2025-12-14" in refused.stderr, refused.stderr
    back = market_mlops("rollback", "--symbol", "SPY", "--timeframe", "d1")
    assert back.returncode == 0 and "from v3 to v2" in back.stdout, back.stderr
    assert c.get_registered_model(NAME).aliases["champion"] == 2

    # A second run finds nothing more to do (v3 is still kept: the newest and the challenger).
    again = market_mlops("retention", "--apply", "--as-of", "2025-12-15")
    assert again.returncode == 0, again.stderr
    assert "archived 0" in again.stdout and "archived 0 rows" in again.stdout and "collected 0" in again.stdout
