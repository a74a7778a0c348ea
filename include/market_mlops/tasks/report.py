"""A summary of the lifecycle a person can read: data versions, models, drift, alerts."""

from __future__ import annotations

from pathlib import Path

from market_mlops.config import PipelineConfig, get_config


def _data_section(cfg: PipelineConfig) -> list[str]:
    from market_mlops.data.versioning import version_history
    from market_mlops.state.store import describe

    history = version_history(cfg)
    lines = [f"Data versions ({len(history)} ingestion runs logged in table data_versions of {describe(cfg)}):"]
    for record in history[-6:]:
        added = sum(record.get("rows_added", {}).values())
        lines.append(f"  {record['interval_end'][:16]}  md5 {record['md5'][:12]}  +{added:>6} rows  "
                     f"{len(record.get('sessions', []))} session(s)  pushed {record.get('objects_pushed', 0)} objects")
    from market_mlops.data.object_store import list_under

    quarantined = [u for u in list_under(f"{cfg.batches_url}/quarantine") if u.endswith("/report.json")]
    lines.append(f"  quarantined batches: {len(quarantined)} (in {cfg.batches_url}/quarantine)")
    return lines


def lifecycle_summary(cfg: PipelineConfig | None = None) -> str:
    cfg = cfg or get_config()
    sections = [_data_section(cfg)]
    if cfg.mlflow_tracking_uri.startswith("sqlite:///") and not Path(cfg.mlflow_tracking_uri.removeprefix("sqlite:///")).exists():
        return "\n".join(_data_section(cfg))
    sections.append(models_section(cfg))
    sections.append(drift_section(cfg))
    sections.append(alerts_section(cfg))
    return "\n".join(line for section in sections for line in section)


def models_section(cfg: PipelineConfig | None = None) -> list[str]:
    import json

    from market_mlops.registry import aliases, store

    cfg = cfg or get_config()
    c = store.client(cfg)
    lines = ["Models (MLflow registry, holdout accuracy vs majority / persistence baselines):"]
    for rm in sorted(c.search_registered_models(), key=lambda m: m.name):
        pointers = dict(rm.aliases or {})
        champion = pointers.get(aliases.CHAMPION, "-")
        latest = max((int(v) for v in pointers.values()), default=0)
        summary = {}
        if latest:
            mv = c.get_model_version(rm.name, str(latest))
            if mv.run_id:
                summary = json.loads(c.get_run(mv.run_id).data.tags.get("mlops.summary", "{}"))
        lines.append(f"  {rm.name:<22} champion v{champion:<3} latest v{latest:<3} "
                     f"acc {summary.get('accuracy', float('nan')):.3f} vs {summary.get('majority_accuracy', float('nan')):.3f} / "
                     f"{summary.get('persistence_accuracy', float('nan')):.3f}  {summary.get('decision', '')}: {summary.get('reason', '')}")
    return lines


def drift_section(cfg: PipelineConfig | None = None) -> list[str]:
    from market_mlops.monitoring.history import drift_history
    from market_mlops.state.store import describe

    cfg = cfg or get_config()
    history = drift_history(cfg)
    lines = [f"Drift checks ({len(history)} in table drift_checks of {describe(cfg)}):"]
    for r in history[-12:]:
        action = "EMERGENCY RETRAIN TRIGGERED" if r.get("emergency_retrain_triggered") else (
            "retrain skipped (cooldown)" if r.get("in_cooldown") else "")
        lines.append(f"  {r['interval_end'][:10]} {r['model']:<20} v{r['version']:<3} {r['band']:<9} "
                     f"realized {r['realized_accuracy']} vs reference {r['holdout_accuracy']} ({r['delta_points']} pts, "
                     f"{r['resolved']} resolved), {r['features_drifted']}/{r['features_checked']} features drifted {action}")
    return lines


def alerts_section(cfg: PipelineConfig | None = None) -> list[str]:
    from collections import Counter

    from market_mlops.monitoring.alerts import Outbox
    from market_mlops.state.store import describe

    cfg = cfg or get_config()
    records = list(Outbox(cfg).latest().values())
    kinds = Counter(r["alert"]["kind"] for r in records)
    lines = [f"Alerts ({len(records)} in table alerts of {describe(cfg)}: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + "):"]
    for r in [r for r in records if r["alert"]["kind"] in ("drift", "validation", "failure")][-5:]:
        lines.append(f"  [{r['status']}] {r['text'][:150]}")
    return lines
