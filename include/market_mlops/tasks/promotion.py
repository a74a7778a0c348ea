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
from market_mlops.registry.gate import Decision, TestKind, decide_demotion, decide_promotion, level_of

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
    """The champion's side of the gate: its probabilities on the holdout rows it has not learned (`rows`, a mask), or
    why it is not compared."""

    version: str
    rows: np.ndarray  # bool mask over the holdout rows: the ones the champion never learned
    proba: np.ndarray | None  # its probabilities on those rows; None: not compared (`note` says why)
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
                        baseline_probas: dict[str, np.ndarray], horizon: int,
                        cfg: PipelineConfig) -> ChampionOnHoldout | None:
    """Load the champion (None when there is none or it is `version` itself) and score it on the holdout rows it has
    not learned; too few of them (`training.min_compare_outcomes` outcomes) and it is not compared. `X_holdout`
    carries each row's last known label (a calibrated model and persistence read it)."""
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
        return ChampionOnHoldout(champion, rows, loaded.base.predict_proba(X_holdout), champion_horizon,
                                 is_baseline=True, rule=loaded.base.rule)
    rows = unseen_rows(holdout_ts, learned_until(loaded, cfg), champion_horizon)
    need = cfg.training.min_compare_outcomes * champion_horizon
    if rows.sum() < need:
        return ChampionOnHoldout(champion, rows, None, champion_horizon, note=(
            f"it learned all but {int(rows.sum())} of the {len(rows)} holdout rows (need {need}: "
            f"{cfg.training.min_compare_outcomes} outcomes of {champion_horizon} bars); its shadow challenger's live "
            "record compares them"))
    return ChampionOnHoldout(champion, rows, loaded.predict_proba(X_holdout[rows]), champion_horizon)


def evaluate_gate(name: str, version: str | None, X_holdout: pd.DataFrame, y_holdout: np.ndarray,
                  holdout_ts: pd.Series, challenger_proba: np.ndarray, evaluation: dict[str, Any],
                  baseline_probas: dict[str, np.ndarray], horizon: int, force: bool = False,
                  cfg: PipelineConfig | None = None, require_improvement: bool = False,
                  kind: TestKind = "retrain") -> GateResult:
    """The gate for a challenger (`version`: its number when a retry finds it registered, else None). Reads the
    champion and scores it on the rows of the holdout it has not learned; writes nothing. `baseline_probas`: each
    baseline's probabilities on the holdout rows; `holdout_ts`: the rows' bar times; `kind`: which budget the test
    spends (`registry.gate.level_of`)."""
    cfg = cfg or get_config()
    champion = champion_on_holdout(name, version, X_holdout, holdout_ts, baseline_probas, horizon, cfg)
    return gate_decision(version, y_holdout, challenger_proba, evaluation, baseline_probas, horizon, champion, force,
                         cfg, require_improvement, kind)


def gate_decision(version: str | None, y_holdout: np.ndarray, challenger_proba: np.ndarray,
                  evaluation: dict[str, Any], baseline_probas: dict[str, np.ndarray], horizon: int,
                  champion: ChampionOnHoldout | None, force: bool, cfg: PipelineConfig,
                  require_improvement: bool = False, kind: TestKind = "retrain") -> GateResult:
    """The gate on numbers only: the challenger's holdout against each baseline and (when the champion could be
    scored on rows it has not learned) against the champion, then `decide_promotion`. The retrain, the weight
    refresh and the replay of a retrain policy all decide here."""
    from market_mlops.model.baselines import BASELINES
    from market_mlops.model.evidence import score_evidence

    training = cfg.training
    metric = training.gate_metric
    level = level_of(kind, training.yearly_false_promotions)
    better = str(evaluation.get("better_baseline") or min(BASELINES, key=lambda b: evaluation[f"{b}_log_loss"]))
    order = [better, *[b for b in BASELINES if b != better]]
    vs_baselines = {b: score_evidence(y_holdout, challenger_proba, baseline_probas[b], horizon, level, metric,
                                      interval=b == better)  # the interval shown is the better baseline's
                    for b in order}
    accuracy = score_evidence(y_holdout, challenger_proba, baseline_probas[better], horizon, level, "accuracy")
    best = vs_baselines[better]
    numbers: GateSummary = {
        "metric": metric, "challenger_accuracy": round(float(evaluation["model_accuracy"]), 4),
        "climatology_accuracy": round(float(evaluation["climatology_accuracy"]), 4),
        "persistence_accuracy": round(float(evaluation["persistence_accuracy"]), 4),
        "challenger_log_loss": round(float(evaluation["model_log_loss"]), 4),
        "climatology_log_loss": round(float(evaluation["climatology_log_loss"]), 4),
        "persistence_log_loss": round(float(evaluation["persistence_log_loss"]), 4),
        "calibration_error": _round(float(evaluation.get("model_calibration_error", float("nan")))),
        "baseline_compared": better, "skill_mean": _round(best.mean), "skill_low": _round(best.low),
        "skill_high": _round(best.high), "skill_e_value": _round(min(e.e_value for e in vs_baselines.values()), 3),
        "e_threshold": round(1 / level, 1), "test_level": round(level, 6), "outcomes": round(best.outcomes, 1),
        "accuracy_diff_mean": _round(accuracy.mean), "accuracy_diff_low": _round(accuracy.low),
        "accuracy_diff_high": _round(accuracy.high)}
    vs_champion = champion_over = None
    if champion is not None and champion.proba is not None and not champion.is_baseline:
        rows = champion.rows
        vs_champion = score_evidence(y_holdout[rows], challenger_proba[rows], champion.proba, champion.horizon, level,
                                     metric)
        champion_over = score_evidence(y_holdout[rows], champion.proba, challenger_proba[rows], champion.horizon,
                                       level, metric, interval=False)
        numbers.update({"champion_rows": int(rows.sum()), "diff_mean": _round(vs_champion.mean),
                        "diff_low": _round(vs_champion.low), "diff_high": _round(vs_champion.high)})
    need = training.gate_requires
    required = (need, float(evaluation[f"model_{need}"])) if need else None
    champion_version = champion.version if champion is not None else None
    decision = decide_promotion(version or "new", vs_baselines, champion_version, vs_champion,
                                training.min_compare_outcomes, force, required,
                                champion.note if champion is not None else None, require_improvement,
                                champion is not None and champion.is_baseline, champion_over)
    if decision.outcome == "already champion":
        return GateResult(decision, {**numbers, "decision": decision.outcome, "champion_version": version},
                          champion_version)
    demote = None
    if champion is not None and not decision.promote:
        demote = _demotion(champion, y_holdout, baseline_probas[better], better, level, metric, numbers)
    summary: GateSummary = {"decision": decision.outcome, "reason": decision.reason,
                            "previous_champion": champion_version, **numbers}
    return GateResult(decision, summary, champion_version, champion.is_baseline if champion else False, demote)


def _round(value: float, digits: int = 4) -> float | None:
    """A gate number as the summary keeps it: rounded, or None when it could not be measured (JSON has no NaN, and the
    summary is an XCom)."""
    return round(float(value), digits) if np.isfinite(value) else None


def _demotion(champion: ChampionOnHoldout, y_holdout: np.ndarray, baseline_proba: np.ndarray, better: str,
              level: float, metric: str, numbers: GateSummary) -> str | None:
    """Why the better baseline should replace the champion: a champion (a model, or a baseline of the other rule)
    proven worse than it on the rows it never learned."""
    from market_mlops.model.evidence import score_evidence

    if champion.proba is None or (champion.is_baseline and champion.rule in (None, better)):
        return None
    rows = champion.rows
    versus = score_evidence(y_holdout[rows], baseline_proba[rows], champion.proba, champion.horizon, level, metric,
                            interval=False)
    numbers.update({"champion_vs_baseline_mean": _round(versus.mean),
                    "champion_vs_baseline_e_value": _round(versus.e_value, 3)})
    return decide_demotion(champion.version, better, versus, f"on the {int(rows.sum())} holdout rows it never learned")


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


def _existing_version(name: str, version: str, cfg: PipelineConfig) -> None:
    """A refusal naming the fix when `version` of `name` does not exist (an outage still raises as it is)."""
    import mlflow.exceptions

    try:
        store.client(cfg).get_model_version(name, version)
    except mlflow.exceptions.MlflowException as error:
        if store.does_not_exist(error):
            raise store.RegistryRefusal(f"{name} has no version {version}",
                                        "name an existing version: market-mlops models lists them") from None
        raise


def rollback_model(symbol: str, timeframe: str, to_version: str | None = None,
                   cfg: PipelineConfig | None = None, horizon: int | None = None,
                   reason: str | None = None, force: bool = False) -> RollbackResult:
    """`rollback` of the registered model of (symbol, timeframe, horizon); no horizon: the timeframe's main one."""
    cfg = cfg or get_config()
    cfg.model_keys([symbol], [timeframe], [horizon] if horizon else None)  # an unknown name: one line saying which
    return rollback(store.model_name(symbol, timeframe, horizon, cfg), to_version, cfg, reason, force)


SERVED_DECISIONS = ("promoted", "baseline champion")  # gate decisions of versions that went to serve


def never_served(name: str, version: str, tags: dict[str, str], cfg: PipelineConfig) -> str | None:
    """Why `version` of `name` should not serve without a forced rollback: it never passed the gate and never held
    `champion` (its gate decision and its holdout against the baselines), or None when it served or passed."""
    from market_mlops.registry.gate import describe_skill

    if tags.get("gate.decision") in SERVED_DECISIONS or any(
            m["to"] == str(version) for m in aliases.alias_history(name, aliases.CHAMPION, cfg)):
        return None
    decision = tags.get("gate.decision") or "no gate decision recorded"
    holdout = describe_skill(tags)
    return (f"{name} v{version} never passed the gate ({decision}"
            + (f": {tags['gate.reason']}" if tags.get("gate.reason") else "") + ")"
            + (f"; its holdout: {holdout}" if holdout else ""))


def rollback(name: str, to_version: str | None = None, cfg: PipelineConfig | None = None,
             reason: str | None = None, force: bool = False) -> RollbackResult:
    """Move `champion` back to the version it replaced (or to `to_version`); one call, audited (with `reason`, the
    operator's words), alerted. A version that never passed the gate nor served moves only with `force` and a
    `reason`, and the audit trail says it was forced."""
    from market_mlops.monitoring.alerts import Alert, send_alert

    cfg = cfg or get_config()
    current = aliases.alias_version(name, aliases.CHAMPION, cfg)
    listing = "market-mlops models lists each model's versions"
    if current is None:
        raise store.RegistryRefusal(f"{name} has no champion to roll back",
                                    f"nothing to undo: train it first (model_retrain); {listing}")
    if to_version is None:
        to_version = aliases.replaced_version(name, current, cfg)
        if to_version is None:
            raise store.RegistryRefusal(
                f"{name}: champion v{current} replaced no earlier version",
                f"name the version to move to: --to-version N (model_rollback's to_version field); {listing}")
    _existing_version(name, str(to_version), cfg)
    target = versions.load_verified(name, str(to_version), cfg=cfg)  # signed by the pipeline, files intact: or no move
    unproven = never_served(name, str(to_version), target.tags, cfg)
    said = reason.strip() if reason and reason.strip() else ""
    if unproven and not (force and said):
        raise store.RegistryRefusal(
            unproven, "roll back to a version that served (market-mlops models lists them), or force it: --force "
                      "with --reason (model_rollback's force and reason fields); the audit trail records the override")
    why = f"rollback from v{current}" + (" (forced: it never passed the gate)" if unproven else "") \
        + (f": {said}" if said else "")
    aliases.move_alias(name, aliases.CHAMPION, str(to_version), why, cfg)
    store.client(cfg).set_model_version_tag(name, current, "rolled_back", f"champion moved back to v{to_version}")
    send_alert(Alert(title=f"Rolled back {name} to v{to_version}", severity="warning", kind="rollback",
                     facts={"model": name, "from": current, "to": to_version}, lines=[why]))
    return {"model": name, "from": current, "to": str(to_version)}
