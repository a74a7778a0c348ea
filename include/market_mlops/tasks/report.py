"""A summary of the lifecycle a person can read: data versions, models, drift, alerts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from market_mlops.config import PipelineConfig, get_config
from market_mlops.monitoring.shadow import describe_live
from market_mlops.registry.gate import describe_skill
from market_mlops.registry.versions import FIT_END_TAG


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


def champion_line(name: str, version: str | None, tags: dict[str, str], ic: float | None, age_days: float | None,
                  latest: str | None, latest_decision: str, live: dict[str, Any] | None = None) -> str:
    """One model as `market-mlops models` and the demo print it: what serves (a model or a baseline, said plainly),
    its holdout log-loss skill and accuracy against the better baseline with the gate's intervals, its IC, the data it
    learned (its fit's last bar: a wall-clock age says nothing of a replayed past), its last check's band, its shadow
    challenger's live record, and what the last registration decided."""
    if version is None:
        serving = "no champion"
    elif tags.get("kind") == "baseline":
        serving = f"v{version} {tags.get('baseline.rule', '')} baseline: no model has beaten it yet"
    else:
        serving = f"v{version} model"
    learned = tags.get(FIT_END_TAG, "")[:10]
    checked = (f"band {band_text(live)} on {str(live.get('interval_end', ''))[:10]}"
               if live and live.get("band") and str(live.get("version")) == str(version) else "")
    facts = [describe_skill(tags), f"IC {ic:+.3f}" if ic is not None else "",
             f"learned data to {learned}" if learned else (f"registered {age_days:.0f} d ago"
                                                           if age_days is not None else ""),
             checked, describe_live(live) if live is not None else "",
             f"last v{latest}: {latest_decision}" if latest and latest != version else ""]
    return f"  {name:<22} {serving:<52} " + "; ".join(f for f in facts if f)


def models_section(cfg: PipelineConfig | None = None) -> list[str]:
    import datetime as dt
    import math

    from market_mlops.monitoring.history import drift_history
    from market_mlops.registry import aliases, store

    cfg = cfg or get_config()
    c = store.client(cfg)
    now = dt.datetime.now(dt.UTC)
    lines = ["Models (MLflow registry): what serves each series, its holdout log-loss skill and accuracy against the "
             "better baseline (intervals at the gate's level), IC, the data it learned, its last band, its shadow "
             "challenger's live record, the last registration:"]
    latest_checks = {r["model"]: r for r in drift_history(cfg)}  # oldest first: the newest check of each model wins
    for rm in sorted(c.search_registered_models(), key=lambda m: m.name):
        pointers = dict(rm.aliases or {})
        champion = pointers.get(aliases.CHAMPION)
        latest = str(max((int(v.version) for v in c.search_model_versions(f"name = '{rm.name}'")), default=0)) or None
        tags: dict[str, str] = {}
        ic = age = None
        if champion is not None:
            mv = c.get_model_version(rm.name, str(champion))
            tags = dict(mv.tags or {})
            age = (now - dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, dt.UTC)).total_seconds() / 86400
            if mv.run_id:
                value = c.get_run(mv.run_id).data.metrics.get("holdout.model_ic")
                ic = value if value is not None and math.isfinite(value) else None
        decision = ""
        if latest and latest != "0" and latest != str(champion):
            decision = str((c.get_model_version(rm.name, latest).tags or {}).get("gate.decision", ""))
        lines.append(champion_line(rm.name, None if champion is None else str(champion), tags, ic, age, latest, decision,
                                   latest_checks.get(rm.name, {})))
    return lines + consensus_section(cfg)


def consensus_line(record: dict[str, Any], min_outcomes: float) -> str:
    """One symbol's newest consensus: its call (or "no consensus edge" until its record beats its anchor's), its
    agreement, each champion's vote, how the calls have fared (the accuracy only once its calls hold `min_outcomes`
    independent outcomes, as a drift band is judged) and its edge over the anchor."""
    from market_mlops.monitoring.consensus import NO_CALL, describe_edge, has_edge, judged_outcomes, vote_text

    votes = ", ".join(f"{m['timeframe']} h{m['horizon']} {m['predicted']} ({vote_text(m)})" for m in record["members"])
    outcomes = judged_outcomes(record)
    if not record.get("resolved"):
        fared = "no call resolved yet"
    elif outcomes < min_outcomes:
        fared = (f"{record['resolved']} calls resolved, {outcomes:.1f} independent outcomes: too few to judge "
                 f"(drift.min_outcomes {min_outcomes:g})")
    else:
        fared = (f"realized {record['realized_accuracy']:.3f} over {record['resolved']} resolved calls "
                 f"({outcomes:.0f} outcomes; {record['anchor_timeframe']} h{record['horizon']} champion alone "
                 f"{record['anchor_accuracy']:.3f})")
    if record["direction"] == NO_CALL:
        return f"  {record['symbol']:<8} no call ({votes}); {record['interval_end'][:10]}"
    voters = [m for m in record["members"] if m["weight"] > 0]
    agree = sum(1 for m in voters if m["predicted"] == record["direction"])
    call = record["direction"] if has_edge(record) else f"no consensus edge (weighted call {record['direction']})"
    return (f"  {record['symbol']:<8} {call} agreement {record['agreement']:.2f} ({agree} of {len(voters)} voting "
            f"champions: {votes}); {fared}; {describe_edge(record)}; {record['interval_end'][:10]}")


def consensus_section(cfg: PipelineConfig) -> list[str]:
    from market_mlops.monitoring.consensus import latest_consensus

    records = latest_consensus(cfg)
    if not records:
        return ["Consensus: none yet (the drift check builds one per symbol after it checks the champions)"]
    return ["Consensus across timeframes and horizons (newest per symbol; votes weighted by each model champion's "
            "log-loss skill over its own baselines; a call only where its record beats its anchor's):",
            *[consensus_line(r, cfg.drift.min_outcomes) for r in records]]


def drift_section(cfg: PipelineConfig | None = None) -> list[str]:
    from market_mlops.monitoring.history import drift_history
    from market_mlops.state.store import describe

    cfg = cfg or get_config()
    history = drift_history(cfg)
    lines = [f"Drift checks ({len(history)} in table drift_checks of {describe(cfg)}; the last {min(12, len(history))}):"]
    for r in history[-12:]:
        action = "EMERGENCY RETRAIN TRIGGERED" if r.get("emergency_retrain_triggered") else (
            "retrain skipped (cooldown)" if r.get("in_cooldown") else "")
        lines.append(f"  {r['interval_end'][:10]} {r['model']:<20} v{r['version']:<3} {band_text(r):<24} "
                     f"realized {_figure(r['realized_accuracy'], '{:.3f}')} vs reference "
                     f"{_figure(r['holdout_accuracy'], '{:.3f}')} ({_figure(r['delta_points'], '{:+.1f}')} pts over the "
                     f"last {r['resolved']} resolved), {r['features_drifted']}/{r['features_checked']} features "
                     f"drifted {action}".rstrip())
    return lines


def band_text(record: dict[str, Any]) -> str:
    """A check's band, or "too few outcomes (k of n)" when its detectors could not judge one (never a "normal" that
    means nothing)."""
    needed = record.get("outcomes_needed")
    if needed is not None:
        return f"too few outcomes ({float(record.get('outcomes') or 0):.1f} of {float(needed):.1f})"
    if "too few to judge" in str(record.get("band_reason", "")):  # a check from before the detectors
        return "too few outcomes"
    return str(record["band"])


def _figure(value: Any, fmt: str) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return fmt.format(number) if number == number else "n/a"


def alerts_since(moment: dt.datetime, cfg: PipelineConfig | None = None) -> list[str]:
    """The alerts written at or after `moment`, a line each (what `market-mlops run` prints after a run: what it
    decided includes what it told people)."""
    from market_mlops.monitoring.alerts import Outbox

    def when(record: dict[str, Any]) -> dt.datetime:
        try:
            stamp = dt.datetime.fromisoformat(str(record.get("created", "")))
        except ValueError:
            return dt.datetime.min.replace(tzinfo=dt.UTC)
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)

    fresh = sorted((r for r in Outbox(cfg or get_config()).records() if when(r) >= moment), key=when)
    if not fresh:
        return ["  alerts: none"]
    return [f"  alerts ({len(fresh)}):"] + [f"    [{r['alert'].get('severity', '')} {r['status']}] {r['alert']['title']}"
                                            for r in fresh]


def alerts_section(cfg: PipelineConfig | None = None) -> list[str]:
    from collections import Counter

    from market_mlops.monitoring.alerts import Outbox
    from market_mlops.state.store import describe

    cfg = cfg or get_config()
    records = list(Outbox(cfg).latest().values())
    kinds = Counter(r["alert"]["kind"] for r in records)
    shown = [r for r in records if r["alert"]["kind"] in ("drift", "validation", "failure", "staleness")][-5:]
    lines = [f"Alerts ({len(records)} in table alerts of {describe(cfg)}: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
             + f"; the last {len(shown)} drift, data and failure alerts):"]
    for r in shown:
        lines.append(f"  [{r['status']}] {r['alert']['title']}")
    if any(r["status"] == "no_connection" for r in records):
        lines.append("  (no_connection: no Slack connection is configured, so alerts stay in the outbox; docs/production.md "
                     "says how to add the slack_alerts connection)")
    return lines


def explain_section(symbol: str, last: int = 5, cfg: PipelineConfig | None = None) -> list[str]:
    """`market-mlops models --explain SYMBOL`: per champion of the symbol, its last `last` forecasts with the
    features that drove each call (signed contributions to the called class's margin); a baseline's say so."""
    from market_mlops.config import get_config
    from market_mlops.monitoring.drivers import describe_drivers, load_drivers
    from market_mlops.monitoring.forecasts import load_forecasts
    from market_mlops.registry import aliases, store

    cfg = cfg or get_config()
    lines = [f"Why {symbol}'s champions called what they called (largest contributions to the called class, "
             "ensemble-weighted margin units; the last forecasts first):"]
    if symbol not in cfg.universe.symbols:
        return [f"error: {symbol} is not in the universe (universe.symbols: {', '.join(cfg.universe.symbols)})"]
    for _symbol, timeframe, horizon in cfg.model_keys([symbol]):
        name = store.model_name(symbol, timeframe, horizon, cfg)
        version = aliases.alias_version(name, aliases.CHAMPION, cfg)
        if version is None:
            continue
        recent = load_forecasts(symbol, timeframe, cfg, model_version=version, model_name=name).tail(last)
        drivers = load_drivers(symbol, timeframe, name, cfg, model_version=version)
        tops = {d["ts"]: d["top"] for d in drivers.to_dict("records")}
        baseline = store.client(cfg).get_model_version(name, version).tags.get("kind") == "baseline"
        lines.append(f"  {name} v{version}" + (" (a baseline: it follows its class mix)" if baseline else ""))
        if recent.empty:
            lines.append("    no forecast yet (the drift check makes them)")
        for f in reversed(recent.to_dict("records")):
            why = describe_drivers(tops[f["ts"]], k=5) if f["ts"] in tops else (
                "baseline: class mix" if baseline else "not explained (forecast before drivers were stored)")
            lines.append(f"    {str(f['ts'])[:16]} {f['predicted']:<8} P(bull) {f['p_bullish']:.2f}: {why}")
    return lines


def retrain_lines(summaries: list[dict[str, Any]]) -> list[str]:
    """`market-mlops run model_retrain`: per model, what the gate decided and on what, and what serves now."""
    lines = []
    for r in summaries:
        if r.get("skipped"):  # a series whose data end before the cutoff: one line, its champion kept
            lines.append(f"  {r.get('model', '?'):<22} skipped: {r['skipped']}")
            continue
        interval = describe_skill({f"gate.{k}": str(v) for k, v in r.items()})
        ic = r.get("ic")
        serving = r.get("serving", "model")
        champion = r.get("champion_version")
        served = f"v{champion} {'baseline (' + str(r.get('baseline_rule', '')) + ')' if serving == 'baseline' else 'model'}" \
            if champion else "nothing"
        lines.append(f"  {r.get('model', '?'):<22} v{r.get('version', '?'):<4} {r.get('decision', '?'):<19} accuracy "
                     f"{r.get('accuracy', float('nan')):.3f}, {interval}, IC {'n/a' if ic is None else f'{ic:+.3f}'}; "
                     f"serving {served}; {r.get('reason', '')}"
                     + (f"; {r['history']}" if r.get("history") else ""))
    return lines


def drift_lines(results: list[dict[str, Any]], cfg: PipelineConfig | None = None) -> list[str]:
    """`market-mlops run drift_check`: per champion, the band and its evidence, features drifted, alerts sent."""
    cfg = cfg or get_config()
    lines = []
    for r in results:
        realized = r.get("realized_accuracy")
        feature_alarm = (r.get("features_checked") or 0) and \
            (r.get("features_drifted") or 0) / r["features_checked"] >= cfg.drift.feature_share_alert
        alerted = r.get("band") in ("drift", "emergency") or bool(feature_alarm)
        retrain = "emergency retrain triggered" if r.get("emergency_retrain_triggered") else (
            "emergency retrain skipped (cooldown)" if r.get("in_cooldown") else "")
        lines.append(f"  {r.get('model', '?'):<22} v{r.get('version', '?'):<4} band {r.get('band', '?'):<9} realized "
                     f"{'n/a' if realized is None else f'{realized:.3f}'} vs reference {r.get('holdout_accuracy', 0):.3f}"
                     f" on {r.get('outcomes', 0)} outcomes ({r.get('resolved', 0)} resolved); features drifted "
                     f"{r.get('features_drifted', 0)}/{r.get('features_checked', 0)} ({r.get('feature_drift', '')}); "
                     f"{'alert sent' if alerted else 'no alert'}{'; ' + retrain if retrain else ''}"
                     f"{'; ' + describe_live(r) if r.get('shadow') else ''}"
                     f"{'; LIVE: ' + str((r.get('live_action') or {}).get('reason')) if r.get('live_action') else ''}")
    return lines


def refresh_lines(summaries: list[dict[str, Any]]) -> list[str]:
    """`market-mlops run weekly_weight_refresh`: per champion, the new weights' decision, or why none were fitted."""
    lines = []
    for r in summaries:
        if r.get("skipped"):
            lines.append(f"  {r.get('model', '?'):<22} v{r.get('version', '?'):<4} skipped: {r['skipped']}")
        else:
            lines.append(f"  {r.get('model', '?'):<22} v{r.get('version', '?'):<4} from v{r.get('parent_version', '?')} "
                         f"{r.get('decision', '?')}: weights {r.get('previous_weights')} -> {r.get('weights')} "
                         f"(test {r.get('test_number', '?')}); {r.get('reason', '')}")
    return lines


RUN_REPORTS: dict[str, tuple[str, Callable[[list[dict[str, Any]]], list[str]]]] = {
    "model_retrain": ("retrain_model", retrain_lines), "drift_check": ("check_model_drift", drift_lines),
    "weekly_weight_refresh": ("refresh_weights", refresh_lines)}


def run_report(dag_id: str, results: list[Any]) -> list[str]:
    """What a run decided, from its mapped task's results (each a list of per-model dicts, one per shard)."""
    if dag_id not in RUN_REPORTS:
        return []
    flat = [r for shard in results for r in (shard if isinstance(shard, list) else [shard]) if isinstance(r, dict)]
    return RUN_REPORTS[dag_id][1](flat)
