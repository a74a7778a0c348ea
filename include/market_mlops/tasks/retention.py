"""Retention: what the registry, the SQL store and the DVC remote keep (`market-mlops retention`, DAG
`model_retention`).

A dry run by default: the same plan, counted, nothing changed. Applied, in this order: model versions nobody can
roll back to are archived (`registry.retention`), forecasts and drift checks older than
`retention.archive_after_months` of those versions move to Parquet (`monitoring.archive`), and data versions no kept
model version was trained on are garbage-collected from the DVC remote and this host's cache (`data.versioning`).
Every step is safe to repeat: a run cut anywhere is finished by the next one.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from market_mlops.config import PipelineConfig, get_config

if TYPE_CHECKING:
    from market_mlops.contracts import RetentionReport

log = logging.getLogger(__name__)


def retention_applies(apply_param: bool, run_type: str, cfg: PipelineConfig | None = None) -> bool:
    """Whether a `model_retention` run carries its plan out: a triggered run when its form says so, a scheduled one
    when the deployment does (`retention.apply_on_schedule`); anything else is a dry run."""
    cfg = cfg or get_config()
    return apply_param or (run_type.lower().endswith("scheduled") and cfg.retention.apply_on_schedule)


def data_clock(as_of: dt.datetime, logged_ends: list[str]) -> dt.datetime:
    """The date retention measures ages from: `as_of`, or the end of the newest logged data when that is earlier.
    A run dated today on data that ends a year ago would otherwise find every data version "old" and collect what a
    retrain or replay of the data's last months asks for."""
    ends = [dt.datetime.fromisoformat(e).astimezone(dt.UTC) for e in logged_ends if e]
    return min(as_of, max(ends)) if ends else as_of


def run_retention(apply: bool = False, as_of: dt.datetime | None = None,
                  cfg: PipelineConfig | None = None) -> RetentionReport:
    """Plan retention and, with `apply`, carry it out; returns the numbers (what was, or would be, archived)."""
    from market_mlops.data.versioning import Collection, collect_data_versions, version_history
    from market_mlops.monitoring.archive import (
        ARCHIVED_TABLES,
        archive_old_rows,
        count_old_rows,
        months_before,
    )
    from market_mlops.registry.retention import archive_version, plan_model, registered_models

    cfg = cfg or get_config()
    as_of = (as_of or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    plans = [plan_model(name, cfg) for name in registered_models(cfg)]
    kept = {p.name: {str(v) for v in p.keep} for p in plans}
    before = months_before(as_of, cfg.retention.archive_after_months)
    # Data versions are aged by the data's own clock: a retrain or replay of its last months must find them.
    data_as_of = data_clock(as_of, [r.get("interval_end", "") for r in version_history(cfg)])
    data_before = months_before(data_as_of, cfg.retention.archive_after_months)
    if apply:
        for plan in plans:
            for version in plan.archive:
                archive_version(plan.name, version, cfg, as_of)
    rows = {spec.table.name: (archive_old_rows if apply else count_old_rows)(spec, before, kept, cfg)
            for spec in ARCHIVED_TABLES}
    if plans:
        collection = collect_data_versions({md5 for p in plans for md5 in p.data_versions}, cfg, apply, data_before)
    else:  # an empty registry (a worker pointed at the wrong MLflow) must not read as "no data is needed"
        log.warning("retention: no registered model found at %s: data versions are kept", cfg.mlflow_tracking_uri)
        collection = Collection([], 0, 0)
    report: RetentionReport = {
        "applied": apply, "as_of": as_of.isoformat(timespec="seconds"),
        "data_as_of": data_as_of.isoformat(timespec="seconds"), "models": len(plans),
        "versions_kept": sum(len(p.keep) for p in plans),
        "versions_archived": {p.name: p.archive for p in plans if p.archive},
        "rows_archived": rows, "rows_before": before.isoformat(timespec="seconds"),
        "data_versions_collected": collection.versions, "remote_objects_removed": collection.remote_objects,
        "cache_objects_removed": collection.cache_objects,
    }
    log.info("retention%s: %d models, %d versions kept, %d archived; rows older than %s: %s; %d data versions "
             "collected (%d remote, %d cache objects)", "" if apply else " (dry run)", len(plans),
             report["versions_kept"], sum(len(v) for v in report["versions_archived"].values()), before.date(), rows,
             len(collection.versions), collection.remote_objects, collection.cache_objects)
    return report


def describe(report: RetentionReport) -> list[str]:
    """The report as the lines `market-mlops retention` prints."""
    verb = "archived" if report["applied"] else "would archive"
    archived = report["versions_archived"]
    data_clock_said = ("" if report.get("data_as_of", report["as_of"])[:10] == report["as_of"][:10] else
                       f"; data versions aged from the newest data, {report['data_as_of'][:10]}")
    lines = [f"retention as of {report['as_of'][:10]}{data_clock_said} "
             f"({'applied' if report['applied'] else 'dry run: --apply to carry it out'})",
             f"  model versions: {report['models']} models, {report['versions_kept']} versions kept, {verb} "
             f"{sum(len(v) for v in archived.values())}"]
    lines += [f"    {name}: v{', v'.join(str(v) for v in versions)}" for name, versions in sorted(archived.items())]
    lines += [f"  {table} older than {report['rows_before'][:10]} of versions not kept: {verb} {count} rows"
              for table, count in report["rows_archived"].items()]
    lines.append(f"  data versions no kept model uses: {'collected' if report['applied'] else 'would collect'} "
                 f"{len(report['data_versions_collected'])} ({report['remote_objects_removed']} remote objects, "
                 f"{report['cache_objects_removed']} in this host's cache)")
    return lines
