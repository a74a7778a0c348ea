"""A champion for every series: when no model has passed the gate, the better naive baseline serves.

A series without a champion gets no forecasts, no drift checks and no line on the Models page. So when a retrain
finds no champion and its challenger does not pass the gate, the baseline that scored better on the same holdout
(climatology, the class shares, or persistence, the shares that followed the last known label: lower log-loss) is
registered as a version of the same registered model,
signed and checked like any other (`kind=baseline`), and takes `champion`. It is said plainly wherever the champion
is shown ("baseline: no model has beaten it yet"); a later challenger that passes the gate against the baselines
replaces it (`registry.gate.decide_promotion`).

Like the served ensemble, the rule serves what it counted on every labelled row (its tables, `model.baselines`); the
numbers it is held to by the drift check are its holdout figures, counted on the development rows only: out of sample.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from market_mlops.config import PipelineConfig
from market_mlops.contracts import TrainingData
from market_mlops.model.baselines import BASELINES, CLIMATOLOGY, BaselineTables
from market_mlops.registry import aliases, store, versions

if TYPE_CHECKING:
    import pandas as pd

    from market_mlops.model.training import TrainedEnsemble
    from market_mlops.tasks.promotion import GateResult

log = logging.getLogger(__name__)
BASELINE_SAYS = "baseline: no model has beaten it yet"
REFERENCE_RUN_TAG = "reference.run_id"  # the run whose `reference/` files a version's drift checks read


class BaselineVersion(TypedDict):
    version: str
    rule: str
    accuracy: float


def baseline_metrics(evaluation: dict[str, Any], rule: str) -> dict[str, Any]:
    """The holdout evaluation as the baseline's own: its `<rule>_*` figures become `model_*` (what the drift check,
    the Models page and `market-mlops models` read of any version), the other keys unchanged."""
    own = {f"model_{k.removeprefix(rule + '_')}": v for k, v in evaluation.items() if k.startswith(f"{rule}_")}
    return {**evaluation, **own}


def register_baseline_champion(symbol: str, timeframe: str, data: TrainingData, X: pd.DataFrame, y: np.ndarray,
                               bars: pd.DataFrame, trained: TrainedEnsemble, evaluation: dict[str, Any],
                               gate: GateResult, cfg: PipelineConfig, reference_run_id: str,
                               horizon: int | None = None) -> BaselineVersion:
    """Register the better baseline of this holdout as a signed version and move `champion` to it (idempotent: a
    retry finds its run and version). `reference_run_id`: the trained model's run, whose drift reference (the same
    rows' features) the baseline's checks read instead of a second copy."""
    from market_mlops.model.ensemble_model import LAST_KNOWN_LABEL
    from market_mlops.model.labels import label_record
    from market_mlops.registry.provenance import fit_span, git_commit

    spec = cfg.spec(timeframe, horizon)
    name = store.model_name(symbol, timeframe, spec.horizon, cfg)
    rule = str(gate.summary.get("baseline_compared") or CLIMATOLOGY)
    interval_end = data["interval_end"]
    run_key = f"baseline-{store.model_slug(symbol, timeframe, spec.horizon, cfg)}-{interval_end[:16]}"
    metrics = baseline_metrics(evaluation, rule)
    tables = trained.baselines or BaselineTables.fit(y, bars["last_known_label"].to_numpy(dtype=float))
    span = fit_span(bars, trained)
    existing = store.find_run(run_key, cfg)
    run_id = existing.info.run_id if existing is not None and existing.info.status == "FINISHED" else None
    if run_id is None:
        example = X.tail(3).assign(**{LAST_KNOWN_LABEL: bars["last_known_label"].tail(3).to_numpy(dtype=float)})
        tags = {"mlops.run_key": run_key, "symbol": symbol, "timeframe": timeframe, "horizon": str(spec.horizon),
                "data.version": data["md5"], "data.gx_result_id": data.get("gx_result_id", "unknown"), "data.interval_end": interval_end,
                "code.git_commit": git_commit(), "kind": "baseline", "baseline.rule": rule,
                REFERENCE_RUN_TAG: reference_run_id, **span}
        run_id = _log_baseline_run(existing.info.run_id if existing else None, run_key, tags, rule, tables,
                                   list(X.columns), metrics, example, {"symbol": symbol, "timeframe": timeframe,
                                                               "horizon": spec.horizon,
                                                               "labels": label_record(cfg.labels_of(symbol, timeframe))}, cfg)
    mv = versions.version_of_run(name, run_id, cfg) or versions.create_version(
        name, run_id, {"data.version": data["md5"], "code.git_commit": git_commit(), versions.KIND_TAG: "baseline",
                       "baseline.rule": rule, **span}, cfg,
        unsigned_tags={"gate.decision": "baseline champion", "gate.reason": f"{BASELINE_SAYS} (the {rule} "
                       f"baseline; the trained model: {gate.decision.reason})",
                       "gate.challenger_accuracy": str(round(float(metrics["model_accuracy"]), 4)),
                       **{f"gate.{b}_{m}": str(dict(gate.summary).get(f"{b}_{m}"))
                          for b in BASELINES for m in ("accuracy", "log_loss")}})
    why = f"{BASELINE_SAYS}: the {rule} baseline serves {name}" + (f" ({gate.demote})" if gate.demote else "")
    previous = aliases.move_alias(name, aliases.CHAMPION, str(mv.version), why, cfg)
    if previous != str(mv.version):
        from market_mlops.monitoring.alerts import Alert, send_alert

        if previous is not None:
            client = store.client(cfg)
            client.set_model_version_tag(name, previous, "replaced_by", str(mv.version))
            client.set_model_version_tag(name, previous, "replaced_reason", gate.demote or why)
        send_alert(Alert(title=f"The {rule} baseline serves {name} (v{mv.version})",
                         severity="warning" if gate.demote else "info", kind="promotion",
                         facts={"model": name, "from": previous or "-", "to": str(mv.version), "rule": rule},
                         lines=[why]))
    accuracy = float(metrics["model_accuracy"])
    log.info("%s v%s is the %s baseline (holdout accuracy %.3f): %s", name, mv.version, rule, accuracy, BASELINE_SAYS)
    return {"version": str(mv.version), "rule": rule, "accuracy": round(accuracy, 4)}


def _log_baseline_run(run_id: str | None, run_key: str, tags: dict[str, str], rule: str, tables: BaselineTables,
                      features: list[str], metrics: dict[str, Any], example: pd.DataFrame,
                      meta: dict[str, Any], cfg: PipelineConfig) -> str:
    """One MLflow run holding what the suite reads of any version: holdout metrics, the model files (the rule) and
    their checksums; its drift reference is the trained model's (`reference.run_id`)."""
    import mlflow
    from mlflow.entities import Metric, Param

    from market_mlops.model.ensemble_model import save_baseline

    client = store.client(cfg)
    with mlflow.start_run(run_id=run_id, experiment_id=store.experiment_id(cfg), run_name=run_key, tags=tags) as run:
        run_id = str(run.info.run_id)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "run" / "evaluation").mkdir(parents=True)
            (folder / "run" / "evaluation" / "holdout_metrics.json").write_text(json.dumps(metrics, default=float))
            lean = cfg.training.model_artifacts == "lean"
            model_dir = folder / "run" / versions.LEAN_MODEL_PATH if lean else folder / "model_files"
            checksums = save_baseline(rule, tables, features, model_dir, meta)
            mlflow.log_artifacts(str(folder / "run"))
            model_id = versions.log_model_files(model_dir, example, "full") if not lean else None
        now = int(time.time() * 1000)
        numbers = [Metric(f"holdout.{k}", float(v), now, 0, model_id=model_id) for k, v in metrics.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)]
        numbers.append(Metric("drift.reference_accuracy", float(metrics.get("model_accuracy", float("nan"))), now, 0,
                              model_id=model_id))
        extra_tags = [] if not lean else [mlflow.entities.RunTag(f"sha256.{k}", v) for k, v in checksums.items()]
        client.log_batch(run_id, metrics=numbers, params=[Param("rule", rule), Param("class_shares", json.dumps(
                             [round(float(v), 4) for v in tables.climatology]))],
                         tags=extra_tags)
        return run_id


def serve_baseline_from_live(name: str, champion_version: str, rule: str, why: str, cfg: PipelineConfig) -> str:
    """A champion model that a baseline is proven better than on its live forecasts is replaced by that baseline, as
    counted on the rows the champion learned (its own tables), registered as a signed baseline version with the
    champion's drift reference (idempotent: a retry finds the run and the version). Returns the new version."""
    import pandas as pd

    from market_mlops.model.ensemble_model import LAST_KNOWN_LABEL, baseline_tables
    from market_mlops.monitoring.alerts import Alert, send_alert
    from market_mlops.registry.provenance import git_commit

    champion = versions.load_verified(name, champion_version, cfg=cfg)
    meta = champion.base.meta
    run_tags = (champion.run or store.client(cfg).get_run(champion.run_id)).data.tags
    run_key = f"baseline-live-{name}-v{champion_version}-{rule}"
    span = {k: champion.tags[k] for k in (versions.FIT_END_TAG, versions.EVALUATION_END_TAG) if k in champion.tags}
    existing = store.find_run(run_key, cfg)
    run_id = existing.info.run_id if existing is not None and existing.info.status == "FINISHED" else None
    if run_id is None:
        holdout = json.loads(versions.run_file(champion.run_id, "evaluation/holdout_metrics.json", cfg).read_text())
        reference_run = run_tags.get(REFERENCE_RUN_TAG, champion.run_id)
        reference = pd.read_parquet(versions.run_file(reference_run, "reference/reference_features.parquet", cfg))
        example = reference.tail(3).assign(**{LAST_KNOWN_LABEL: [float("nan")] * min(3, len(reference))})
        tags = {"mlops.run_key": run_key, **{k: str(meta[k]) for k in ("symbol", "timeframe", "horizon") if k in meta},
                **{k: run_tags[k] for k in ("data.version", "data.gx_result_id", "data.interval_end") if k in run_tags},
                "code.git_commit": git_commit(), "kind": "baseline", "baseline.rule": rule,
                REFERENCE_RUN_TAG: reference_run, "baseline.replaces": champion_version, **span}
        run_id = _log_baseline_run(existing.info.run_id if existing else None, run_key, tags, rule,
                                   baseline_tables(meta), list(reference.columns), baseline_metrics(holdout, rule),
                                   example, {k: meta[k] for k in ("symbol", "timeframe", "horizon", "labels")
                                             if k in meta}, cfg)
    # The champion's holdout figures of both baselines: what the new version's page and `market-mlops models` show.
    figures = json.loads(versions.run_file(champion.run_id, "evaluation/holdout_metrics.json", cfg).read_text())
    holdout_numbers = {f"gate.{b}_{m}": str(round(float(figures[f"{b}_{m}"]), 4))
                       for b in BASELINES for m in ("accuracy", "log_loss") if f"{b}_{m}" in figures}
    mv = versions.version_of_run(name, run_id, cfg) or versions.create_version(
        name, run_id, {"data.version": run_tags.get("data.version", "unknown"), "code.git_commit": git_commit(),
                       versions.KIND_TAG: "baseline", "baseline.rule": rule, **span}, cfg,
        unsigned_tags={"gate.decision": "baseline champion", "gate.reason": f"live record: {why}",
                       **holdout_numbers})
    previous = aliases.move_alias(name, aliases.CHAMPION, str(mv.version), f"live record: {why}", cfg)
    if previous != str(mv.version):
        client = store.client(cfg)
        client.set_model_version_tag(name, champion_version, "replaced_by", str(mv.version))
        client.set_model_version_tag(name, champion_version, "replaced_reason", f"live record: {why}")
        send_alert(Alert(title=f"The {rule} baseline serves {name} (v{mv.version}) instead of v{champion_version}",
                         severity="warning", kind="promotion",
                         facts={"model": name, "from": champion_version, "to": str(mv.version), "rule": rule},
                         lines=[why]))
    log.info("%s v%s: the %s baseline replaces champion v%s on its live record (%s)", name, mv.version, rule,
             champion_version, why)
    return str(mv.version)
