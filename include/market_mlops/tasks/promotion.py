"""Applying the gate to the registry, and rollback.

The gate is decided before the new version exists (`evaluate_gate`: measure the challenger against the better baseline
and the champion on the same holdout rows, then the pure `registry.gate.decide_promotion`), so its numbers are
written with the version in one registry call (`GateResult.version_tags`) instead of a call per number.
`apply_gate` then marks the version `challenger`, moves `champion` when promoted (the old version keeps its artifacts
and a tag saying why it was replaced) and announces it. Every step is idempotent: a retried task that finds its
version registered evaluates again (the champion may now be that version: "already champion") and re-applies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from market_mlops.config import PipelineConfig, get_config
from market_mlops.contracts import GateSummary, RollbackResult
from market_mlops.registry import aliases, store, versions
from market_mlops.registry.gate import Decision, Interval, decide_demotion, decide_promotion

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateResult:
    """What the gate decided for a challenger, with the numbers it decided on."""

    decision: Decision
    summary: GateSummary
    champion: str | None
    champion_is_baseline: bool = False
    demote: str | None = None  # why the better baseline should now serve instead of the champion (not promoted)

    def version_tags(self) -> dict[str, str]:
        """The decision as tags of the new version (`gate.<key>`), what the Models page and the audit read."""
        if self.decision.outcome == "already champion":
            return {}
        return {f"gate.{key}": str(value) for key, value in self.summary.items() if key != "champion_version"}


@dataclass(frozen=True)
class ChampionOnHoldout:
    """The champion's side of the gate: its predictions on the holdout rows it has not learned (`rows`, a mask), or
    why it is not compared."""

    version: str
    rows: np.ndarray  # bool mask over the holdout rows: the ones the champion never learned
    pred: np.ndarray | None  # its predictions on those rows; None: not compared (`note` says why)
    horizon: int
    is_baseline: bool = False
    note: str | None = None
    rule: str | None = None  # a baseline champion's rule


def learned_until(model: versions.LoadedModel, cfg: PipelineConfig) -> pd.Timestamp | None:
    """The last bar a version learned: its `fit.end` tag (the base models) or, later, `weights.fit_end` (a refresh
    fitted its weights after it); a version from before the refit: its run's `train_end` parameter."""
    import pandas as pd

    ends = [pd.Timestamp(model.tags[t]) for t in (versions.FIT_END_TAG, versions.WEIGHTS_FIT_END_TAG) if model.tags.get(t)]
    if not ends:
        text = store.client(cfg).get_run(model.run_id).data.params.get("train_end")
        ends = [pd.Timestamp(text)] if text else []
    return max((t.tz_localize("UTC") if t.tzinfo is None else t for t in ends), default=None)


def unseen_rows(holdout_ts: pd.Series, fit_end: pd.Timestamp | None, horizon: int) -> np.ndarray:
    """Holdout rows a model fitted up to `fit_end` never learned: after it, less the first `horizon` (their labels
    share bars of their future with the last learned labels)."""
    import numpy as np
    import pandas as pd

    stamps = pd.DatetimeIndex(pd.to_datetime(holdout_ts, utc=True)).as_unit("ns").asi8
    if fit_end is None:
        return np.ones(len(stamps), dtype=bool)
    end = fit_end.tz_localize("UTC") if fit_end.tzinfo is None else fit_end.tz_convert("UTC")
    after = np.flatnonzero(stamps > end.as_unit("ns").value)
    mask = np.zeros(len(stamps), dtype=bool)
    mask[after[horizon:]] = True
    return mask


def champion_on_holdout(name: str, version: str | None, X_holdout: pd.DataFrame, holdout_ts: pd.Series,
                        baseline_preds: dict[str, np.ndarray], horizon: int,
                        cfg: PipelineConfig) -> ChampionOnHoldout | None:
    """Load the champion (None when there is none or it is `version` itself) and score it on the holdout rows it has
    not learned; too few of them (`training.min_compare_outcomes` effective rows) and it is not compared."""
    from market_mlops.model.ensemble_model import BaselineModel

    champion = aliases.alias_version(name, aliases.CHAMPION, cfg)
    if champion is None or champion == version:
        return None if champion is None else ChampionOnHoldout(champion, np.zeros(0, dtype=bool), None, horizon)
    loaded = versions.load_verified(name, champion, cfg=cfg)
    champion_horizon = int(loaded.base.meta.get("horizon", horizon))
    if champion_horizon != horizon:
        raise ValueError(
            f"{name}: its champion v{champion} calls {champion_horizon} bars ahead, this challenger {horizon}: the "
            "timeframe's main horizon (the first of timeframes.<tf>.horizons, the model named without -hN) changed; "
            f"put {champion_horizon} first again (a new horizon is a new model, added after it)")
    if isinstance(loaded.base, BaselineModel):
        rows = np.ones(len(X_holdout), dtype=bool)
        return ChampionOnHoldout(champion, rows, loaded.base.predict_from_baselines(baseline_preds), champion_horizon,
                                 is_baseline=True, rule=loaded.base.rule)
    rows = unseen_rows(holdout_ts, learned_until(loaded, cfg), champion_horizon)
    need = cfg.training.min_compare_outcomes * champion_horizon
    if rows.sum() < need:
        return ChampionOnHoldout(champion, rows, None, champion_horizon, note=(
            f"it learned all but {int(rows.sum())} of the {len(rows)} holdout rows (need {need}: "
            f"{cfg.training.min_compare_outcomes} outcomes of {champion_horizon} bars)"))
    pred = loaded.predict_proba(X_holdout[rows]).argmax(axis=1)
    return ChampionOnHoldout(champion, rows, pred, champion_horizon)


def evaluate_gate(name: str, version: str | None, X_holdout: pd.DataFrame, y_holdout: np.ndarray,
                  holdout_ts: pd.Series, challenger_proba: np.ndarray, evaluation: dict[str, Any],
                  baseline_preds: dict[str, np.ndarray], horizon: int, force: bool = False,
                  cfg: PipelineConfig | None = None, require_improvement: bool = False,
                  confidence: float | None = None) -> GateResult:
    """The gate for a challenger (`version`: its number when a retry finds it registered, else None). Reads the
    champion and scores it on the rows of the holdout it has not learned; writes nothing. `baseline_preds`: each
    baseline's predictions on the holdout rows (`model.evaluation.baseline_predictions`); `holdout_ts`: the rows'
    bar times. `confidence`: of the intervals (default `training.promotion_confidence`; the refresh spends less)."""
    cfg = cfg or get_config()
    champion = champion_on_holdout(name, version, X_holdout, holdout_ts, baseline_preds, horizon, cfg)
    return gate_decision(version, y_holdout, challenger_proba, evaluation, baseline_preds, horizon, champion, force,
                         cfg, require_improvement, confidence)


def gate_decision(version: str | None, y_holdout: np.ndarray, challenger_proba: np.ndarray,
                  evaluation: dict[str, Any], baseline_preds: dict[str, np.ndarray], horizon: int,
                  champion: ChampionOnHoldout | None, force: bool, cfg: PipelineConfig,
                  require_improvement: bool = False, confidence: float | None = None) -> GateResult:
    """The gate on numbers only: the challenger's holdout against the better baseline and (when the champion could
    be scored on rows it has not learned) against the champion, then `decide_promotion`. The retrain, the weight
    refresh and the replay of a retrain policy all decide here."""
    from market_mlops.model.evaluation import bootstrap_accuracy_difference

    accuracy = float(evaluation["model_accuracy"])
    baselines = {"majority": float(evaluation["majority_accuracy"]),
                 "persistence": float(evaluation["persistence_accuracy"])}
    numbers: GateSummary = {"challenger_accuracy": round(accuracy, 4),
                            "majority_accuracy": round(baselines["majority"], 4),
                            "persistence_accuracy": round(baselines["persistence"], 4)}
    training = cfg.training
    level = training.promotion_confidence if confidence is None else confidence
    better = max(baselines, key=lambda b: baselines[b])
    predicted = challenger_proba.argmax(axis=1)
    vs_baseline = _interval(bootstrap_accuracy_difference(y_holdout, predicted, baseline_preds[better],
                                                          training.bootstrap_samples, training.seed, horizon, level))
    numbers.update({"baseline_compared": better, "baseline_diff_mean": round(vs_baseline.mean, 4),
                    "baseline_diff_ci_low": round(vs_baseline.low, 4), "baseline_diff_ci_high": round(vs_baseline.high, 4),
                    "confidence": level, "block": vs_baseline.block, "effective_rows": round(vs_baseline.effective_rows, 1)})
    vs_champion = None
    if champion is not None and champion.pred is not None and not champion.is_baseline:
        rows = champion.rows
        vs_champion = _interval(bootstrap_accuracy_difference(
            y_holdout[rows], predicted[rows], champion.pred, training.bootstrap_samples, training.seed,
            champion.horizon, level))
        numbers.update({"champion_accuracy": round(float((champion.pred == y_holdout[rows]).mean()), 4),
                        "champion_rows": int(rows.sum()), "diff_mean": round(vs_champion.mean, 4),
                        "diff_ci_low": round(vs_champion.low, 4), "diff_ci_high": round(vs_champion.high, 4)})
    need = training.gate_requires
    required = (need, float(evaluation[f"model_{need}"])) if need else None
    champion_version = champion.version if champion is not None else None
    decision = decide_promotion(version or "new", accuracy, baselines, champion_version, vs_champion,
                                training.promotion_tolerance, force, vs_baseline, required,
                                champion.note if champion is not None else None, require_improvement,
                                champion is not None and champion.is_baseline)
    if decision.outcome == "already champion":
        return GateResult(decision, {**numbers, "decision": decision.outcome, "champion_version": version},
                          champion_version)
    demote = None
    if champion is not None and not decision.promote:
        demote = _demotion(champion, y_holdout, baseline_preds[better], better, training, level, numbers)
    summary: GateSummary = {"decision": decision.outcome, "reason": decision.reason,
                            "previous_champion": champion_version, **numbers}
    return GateResult(decision, summary, champion_version, champion.is_baseline if champion else False, demote)


def _demotion(champion: ChampionOnHoldout, y_holdout: np.ndarray, baseline_pred: np.ndarray, better: str,
              training: Any, level: float, numbers: GateSummary) -> str | None:
    """Why the better baseline should replace the champion: a champion (a model, or a baseline of the other rule)
    significantly worse than it on the rows it never learned (an interval, never a point estimate)."""
    from market_mlops.model.evaluation import bootstrap_accuracy_difference

    if champion.pred is None or (champion.is_baseline and champion.rule in (None, better)):
        return None
    rows = champion.rows
    versus = _interval(bootstrap_accuracy_difference(y_holdout[rows], champion.pred, baseline_pred[rows],
                                                     training.bootstrap_samples, training.seed, champion.horizon, level))
    numbers.update({"champion_vs_baseline_mean": round(versus.mean, 4),
                    "champion_vs_baseline_ci_high": round(versus.high, 4)})
    return decide_demotion(champion.version, versus, better, int(rows.sum()))


def _interval(difference: Any) -> Interval:
    return Interval(difference.mean, difference.low, difference.high, difference.block, difference.effective_rows)


def apply_gate(name: str, version: str, gate: GateResult, cfg: PipelineConfig | None = None) -> GateSummary:
    """Mark `version` challenger, move champion when the gate promoted it, tag the replaced champion, alert."""
    cfg = cfg or get_config()
    aliases.move_alias(name, aliases.CHALLENGER, version, "new version from training", cfg)
    summary = dict(gate.summary)
    if gate.decision.outcome == "already champion":
        return summary  # type: ignore[return-value]
    if gate.champion is not None and gate.champion != version:
        store.client(cfg).set_model_version_tag(name, gate.champion, f"gate.vs_v{version}",
                                                f"{gate.decision.outcome}: {gate.decision.reason}")
    if gate.decision.promote:
        _promote(name, version, gate.champion, gate.decision.reason, gate.summary, cfg)
    log.info("gate for %s v%s: %s (%s) %s", name, version, gate.decision.outcome, gate.decision.reason, gate.summary)
    summary["champion_version"] = version if gate.decision.promote else gate.champion
    return summary  # type: ignore[return-value]


def _promote(name: str, version: str, champion: str | None, reason: str, numbers: GateSummary,
             cfg: PipelineConfig) -> None:
    """Move champion (idempotent: a retry finds it moved) and say so."""
    from market_mlops.monitoring.alerts import Alert, send_alert

    aliases.move_alias(name, aliases.CHAMPION, version, reason, cfg)
    if champion is not None:
        c = store.client(cfg)
        c.set_model_version_tag(name, champion, "replaced_by", version)
        c.set_model_version_tag(name, champion, "replaced_reason", reason)
    send_alert(Alert(title=f"Promoted {name} v{version} to champion", severity="info", kind="promotion",
                     facts={"model": name, "from": champion or "-", "to": version, **numbers}, lines=[reason]))


def rollback_model(symbol: str, timeframe: str, to_version: str | None = None,
                   cfg: PipelineConfig | None = None, horizon: int | None = None) -> RollbackResult:
    """`rollback` of the registered model of (symbol, timeframe, horizon); no horizon: the timeframe's main one."""
    cfg = cfg or get_config()
    cfg.model_keys([symbol], [timeframe], [horizon] if horizon else None)  # an unknown name: one line saying which
    return rollback(store.model_name(symbol, timeframe, horizon, cfg), to_version, cfg)


def rollback(name: str, to_version: str | None = None, cfg: PipelineConfig | None = None) -> RollbackResult:
    """Move `champion` back to the version it replaced (or to `to_version`); one call, audited, alerted."""
    from market_mlops.monitoring.alerts import Alert, send_alert

    cfg = cfg or get_config()
    current = aliases.alias_version(name, aliases.CHAMPION, cfg)
    if current is None:
        raise store.RegistryError(f"{name} has no champion to roll back")
    if to_version is None:
        to_version = aliases.replaced_version(name, current, cfg)
        if to_version is None:
            raise store.RegistryError(f"{name}: champion v{current} replaced no earlier version; name one with --to-version")
    store.client(cfg).get_model_version(name, str(to_version))  # fails clearly if the version does not exist
    versions.load_verified(name, str(to_version), cfg=cfg)  # signed by the pipeline, files intact: or no move
    aliases.move_alias(name, aliases.CHAMPION, str(to_version), f"rollback from v{current}", cfg)
    store.client(cfg).set_model_version_tag(name, current, "rolled_back", f"champion moved back to v{to_version}")
    send_alert(Alert(title=f"Rolled back {name} to v{to_version}", severity="warning", kind="rollback",
                     facts={"model": name, "from": current, "to": to_version}))
    return {"model": name, "from": current, "to": str(to_version)}
