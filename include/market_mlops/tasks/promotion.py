"""Applying the gate to the registry, and rollback.

`promote_if_better` is a short list of named steps around the pure `registry.gate.decide_promotion`: mark the new
version `challenger`, measure it against the champion on the same holdout rows, decide, record the decision as tags
on both versions, move `champion` when promoted (the old version keeps its artifacts and a tag saying why it was
replaced) and announce it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from market_mlops.config import PipelineConfig, get_config
from market_mlops.contracts import GateSummary, RollbackResult
from market_mlops.registry import aliases, store, versions
from market_mlops.registry.gate import Decision, Interval, decide_promotion

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)


def promote_if_better(name: str, version: str, X_holdout: pd.DataFrame, y_holdout: np.ndarray,
                      challenger_proba: np.ndarray, evaluation: dict[str, Any], baseline_preds: dict[str, np.ndarray],
                      horizon: int, force: bool = False, cfg: PipelineConfig | None = None) -> GateSummary:
    """Run the gate for a freshly registered version; returns the decision and its numbers. `baseline_preds`:
    each baseline's predictions on the holdout rows (`model.evaluation.baseline_predictions`)."""
    cfg = cfg or get_config()
    aliases.move_alias(name, aliases.CHALLENGER, version, "new version from training", cfg)
    accuracy = float(evaluation["model_accuracy"])
    baselines = {"majority": float(evaluation["majority_accuracy"]),
                 "persistence": float(evaluation["persistence_accuracy"])}
    numbers: GateSummary = {"challenger_accuracy": round(accuracy, 4),
                            "majority_accuracy": round(baselines["majority"], 4),
                            "persistence_accuracy": round(baselines["persistence"], 4)}
    vs_baseline, better = _compare_with_baseline(y_holdout, challenger_proba, baselines, baseline_preds, horizon, cfg)
    numbers.update({"baseline_compared": better, "baseline_diff_mean": round(vs_baseline.mean, 4),
                    "baseline_diff_ci_low": round(vs_baseline.low, 4), "baseline_diff_ci_high": round(vs_baseline.high, 4)})
    champion = aliases.alias_version(name, aliases.CHAMPION, cfg)
    vs_champion = None
    if champion is not None and champion != version:
        vs_champion, champion_accuracy = _compare_with_champion(name, champion, X_holdout, y_holdout,
                                                                challenger_proba, cfg)
        numbers.update({"champion_accuracy": round(champion_accuracy, 4), "diff_mean": round(vs_champion.mean, 4),
                        "diff_ci_low": round(vs_champion.low, 4), "diff_ci_high": round(vs_champion.high, 4)})
    need = cfg.training.gate_requires
    required = (need, float(evaluation[f"model_{need}"])) if need else None
    decision = decide_promotion(version, accuracy, baselines, champion, vs_champion,
                                cfg.training.promotion_tolerance, force, vs_baseline, required)
    if decision.outcome == "already champion":
        return {**numbers, "decision": decision.outcome, "champion_version": version}
    summary: GateSummary = {"decision": decision.outcome, "reason": decision.reason, "previous_champion": champion,
                            **numbers}
    _record_decision(name, version, champion, decision, summary, cfg)
    if decision.promote:
        _promote(name, version, champion, decision.reason, numbers, cfg)
    log.info("gate for %s v%s: %s (%s) %s", name, version, decision.outcome, decision.reason, numbers)
    summary["champion_version"] = version if decision.promote else champion
    return summary


def _compare_with_baseline(y_holdout: np.ndarray, challenger_proba: np.ndarray, baselines: dict[str, float],
                           baseline_preds: dict[str, np.ndarray], horizon: int,
                           cfg: PipelineConfig) -> tuple[Interval, str]:
    """Bootstrap interval of accuracy(challenger) - accuracy(the better baseline) on the same rows."""
    from market_mlops.model.evaluation import bootstrap_accuracy_difference

    better = max(baselines, key=lambda b: baselines[b])
    mean, low, high = bootstrap_accuracy_difference(y_holdout, challenger_proba.argmax(axis=1), baseline_preds[better],
                                                    cfg.training.bootstrap_samples, cfg.training.seed, block=horizon,
                                                    confidence=cfg.training.promotion_confidence)
    return Interval(mean, low, high), better


def _compare_with_champion(name: str, champion: str, X_holdout: pd.DataFrame, y_holdout: np.ndarray,
                           challenger_proba: np.ndarray, cfg: PipelineConfig) -> tuple[Interval, float]:
    """Bootstrap interval of accuracy(challenger) - accuracy(champion) on the same rows, in blocks of the horizon."""
    from market_mlops.model.evaluation import bootstrap_accuracy_difference

    loaded = versions.load_verified(name, champion, cfg=cfg)
    champion_pred = loaded.predict_proba(X_holdout).argmax(axis=1)
    mean, low, high = bootstrap_accuracy_difference(y_holdout, challenger_proba.argmax(axis=1), champion_pred,
                                                    cfg.training.bootstrap_samples, cfg.training.seed,
                                                    block=int(loaded.base.meta.get("horizon", 1)),
                                                    confidence=cfg.training.promotion_confidence)
    return Interval(mean, low, high), float((champion_pred == y_holdout).mean())


def _record_decision(name: str, version: str, champion: str | None, decision: Decision, summary: GateSummary,
                     cfg: PipelineConfig) -> None:
    c = store.client(cfg)
    for key, value in summary.items():
        c.set_model_version_tag(name, version, f"gate.{key}", str(value))
    if champion is not None:
        c.set_model_version_tag(name, champion, f"gate.vs_v{version}", f"{decision.outcome}: {decision.reason}")


def _promote(name: str, version: str, champion: str | None, reason: str, numbers: GateSummary,
             cfg: PipelineConfig) -> None:
    from market_mlops.monitoring.alerts import Alert, send_alert

    aliases.move_alias(name, aliases.CHAMPION, version, reason, cfg)
    if champion is not None:
        c = store.client(cfg)
        c.set_model_version_tag(name, champion, "replaced_by", version)
        c.set_model_version_tag(name, champion, "replaced_reason", reason)
    send_alert(Alert(title=f"Promoted {name} v{version} to champion", severity="info", kind="promotion",
                     facts={"model": name, "from": champion or "-", "to": version, **numbers}, lines=[reason]))


def rollback_model(symbol: str, timeframe: str, to_version: str | None = None,
                   cfg: PipelineConfig | None = None) -> RollbackResult:
    """`rollback` of the registered model of (symbol, timeframe)."""
    return rollback(store.model_name(symbol, timeframe), to_version, cfg)


def rollback(name: str, to_version: str | None = None, cfg: PipelineConfig | None = None) -> RollbackResult:
    """Move `champion` back to the version it replaced (or to `to_version`); one call, audited, alerted."""
    from market_mlops.monitoring.alerts import Alert, send_alert

    cfg = cfg or get_config()
    current = aliases.alias_version(name, aliases.CHAMPION, cfg)
    if current is None:
        raise store.RegistryError(f"{name} has no champion to roll back")
    if to_version is None:
        moves = [m for m in aliases.alias_history(name, aliases.CHAMPION, cfg) if m["to"] == current and m["from"]]
        if not moves:
            raise store.RegistryError(f"{name}: champion v{current} replaced no earlier version; name one with --to-version")
        to_version = str(moves[-1]["from"])
    store.client(cfg).get_model_version(name, str(to_version))  # fails clearly if the version does not exist
    versions.load_verified(name, str(to_version), cfg=cfg)  # signed by the pipeline, files intact: or no move
    aliases.move_alias(name, aliases.CHAMPION, str(to_version), f"rollback from v{current}", cfg)
    store.client(cfg).set_model_version_tag(name, current, "rolled_back", f"champion moved back to v{to_version}")
    send_alert(Alert(title=f"Rolled back {name} to v{to_version}", severity="warning", kind="rollback",
                     facts={"model": name, "from": current, "to": to_version}))
    return {"model": name, "from": current, "to": str(to_version)}
