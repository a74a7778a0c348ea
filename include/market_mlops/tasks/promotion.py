"""The promotion gate and rollback.

A new version becomes `challenger`. It becomes `champion` only if it beats both naive baselines on the holdout
and, when a champion exists, the bootstrap 90% interval of accuracy(challenger) - accuracy(champion) on the same
holdout rows has its lower end above -tolerance (not worse beyond the tolerance). The decision and its numbers are
written as tags on both versions; the alias moves are in the audit trail.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from market_mlops.config import PipelineConfig, get_config
from market_mlops.registry import aliases, store, versions

log = logging.getLogger(__name__)


def promote_if_better(name: str, version: str, X_holdout: pd.DataFrame, y_holdout: np.ndarray,
                      challenger_proba: np.ndarray, evaluation: dict[str, Any], force: bool = False,
                      cfg: PipelineConfig | None = None) -> dict[str, Any]:
    from market_mlops.model.evaluation import bootstrap_accuracy_difference
    from market_mlops.monitoring.alerts import Alert, send_alert

    cfg = cfg or get_config()
    c = store.client(cfg)
    aliases.move_alias(name, aliases.CHALLENGER, version, "new version from training", cfg)
    acc = evaluation["model_accuracy"]
    baselines = {"majority": evaluation["majority_accuracy"], "persistence": evaluation["persistence_accuracy"]}
    beats_baselines = all(acc > b for b in baselines.values())
    numbers: dict[str, Any] = {"challenger_accuracy": round(acc, 4), **{f"{k}_accuracy": round(v, 4) for k, v in baselines.items()}}

    try:
        champion = str(c.get_model_version_by_alias(name, aliases.CHAMPION).version)
    except Exception:
        champion = None
    if champion == version:
        return {"decision": "already champion", "champion_version": version, **numbers}

    if champion is not None:
        loaded = versions.load_verified(name, champion, cfg=cfg)
        champ_proba = loaded.predict_proba(X_holdout)
        champ_pred = champ_proba.argmax(axis=1)
        mean, low, high = bootstrap_accuracy_difference(y_holdout, challenger_proba.argmax(axis=1), champ_pred,
                                                        cfg.training.bootstrap_samples, cfg.training.seed,
                                                        block=int(loaded.base.meta.get("horizon", 1)))
        numbers.update({"champion_accuracy": round(float((champ_pred == y_holdout).mean()), 4),
                        "diff_mean": round(mean, 4), "diff_ci_low": round(low, 4), "diff_ci_high": round(high, 4)})
        not_worse = low > -cfg.training.promotion_tolerance
    else:
        not_worse = True

    if force:
        promote, reason = True, "forced by the operator (force_promotion)"
    elif not beats_baselines:
        worse = [k for k, b in baselines.items() if acc <= b]
        promote, reason = False, f"does not beat the {' and '.join(worse)} baseline"
    elif not not_worse:
        promote, reason = False, f"worse than champion v{champion} beyond tolerance {cfg.training.promotion_tolerance}"
    else:
        promote = True
        reason = "first model that beats both baselines" if champion is None else \
            f"beats both baselines and is not worse than champion v{champion} beyond tolerance"

    decision = {"decision": "promoted" if promote else "kept as challenger", "reason": reason,
                "previous_champion": champion, **numbers}
    tag_values = {f"gate.{k}": str(v) for k, v in decision.items()}
    for key, value in tag_values.items():
        c.set_model_version_tag(name, version, key, value)
    if champion is not None:
        c.set_model_version_tag(name, champion, f"gate.vs_v{version}", f"{decision['decision']}: {reason}")
    if promote:
        aliases.move_alias(name, aliases.CHAMPION, version, reason, cfg)
        if champion is not None:
            c.set_model_version_tag(name, champion, "replaced_by", version)
            c.set_model_version_tag(name, champion, "replaced_reason", reason)
        send_alert(Alert(title=f"Promoted {name} v{version} to champion", severity="info", kind="promotion",
                         facts={"model": name, "from": champion or "-", "to": version, **numbers}, lines=[reason]))
    log.info("gate for %s v%s: %s (%s) %s", name, version, decision["decision"], reason, numbers)
    return {**decision, "champion_version": version if promote else champion}


def rollback(name: str, to_version: str | None = None, cfg: PipelineConfig | None = None) -> dict[str, Any]:
    """Move `champion` back to the version it replaced (or to `to_version`); one call, audited, alerted."""
    from market_mlops.monitoring.alerts import Alert, send_alert

    cfg = cfg or get_config()
    c = store.client(cfg)
    try:
        current = str(c.get_model_version_by_alias(name, aliases.CHAMPION).version)
    except Exception:
        raise store.RegistryError(f"{name} has no champion to roll back") from None
    if to_version is None:
        moves = [m for m in aliases.alias_history(name, aliases.CHAMPION, cfg) if m["to"] == current and m["from"]]
        if not moves:
            raise store.RegistryError(f"{name}: champion v{current} replaced no earlier version; name one with --to-version")
        to_version = moves[-1]["from"]
    c.get_model_version(name, str(to_version))  # fails clearly if the version does not exist
    aliases.move_alias(name, aliases.CHAMPION, str(to_version), f"rollback from v{current}", cfg)
    c.set_model_version_tag(name, current, "rolled_back", f"champion moved back to v{to_version}")
    send_alert(Alert(title=f"Rolled back {name} to v{to_version}", severity="warning", kind="rollback",
                     facts={"model": name, "from": current, "to": to_version}))
    return {"model": name, "from": current, "to": str(to_version)}
