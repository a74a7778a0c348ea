"""`market-mlops replay`: what the retrain policy would have done over history, and whether it paid.

For each model and each policy (a static model trained once at the start; the monthly full retrain; the weekly
weight refresh; the drift-triggered emergency retrain with its cooldown; any combination), the replay walks the
sessions of a date range on one data version, in process: at the first session of a month the retrain the cron
runs (data before the 1st), at the first session of a week the weight refresh (resolved bars before it), after each
session the drift check (realized accuracy of the champion's resolved forecasts against its reference accuracy, the
band, the cooldown) and, on an emergency, a retrain on the data up to that close. Every decision is the suite's own
code: `training_frame` and `train_ensemble` (the retrain task's features, labels, folds and fits), `fit_weights`
with the refresh's shrinkage, `gate_decision` (the same gate, bootstrap intervals included), `accuracy_band` and
`decide_emergency`. Nothing is registered: the champions live in memory. The forecasts of whichever champion each
policy had at each bar are stitched into one out-of-sample series per policy.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market_mlops.config import PipelineConfig, get_config

log = logging.getLogger(__name__)
POLICY_PARTS = ("monthly", "weekly", "emergency")
DEFAULT_POLICIES = ("static", "monthly", "monthly+weekly", "monthly+weekly+emergency")


def parse_policy(text: str) -> frozenset[str]:
    """'monthly+weekly+emergency' -> its parts; 'static' -> none. An unknown part is a ValueError naming it."""
    parts = frozenset(p.strip() for p in text.split("+") if p.strip() and p.strip() != "static")
    unknown = sorted(parts - set(POLICY_PARTS))
    if unknown:
        raise ValueError(f"unknown policy part(s) {unknown} in {text!r}: combine {', '.join(POLICY_PARTS)} with '+', "
                         "or 'static'")
    return parts


@dataclass
class Champion:
    """A model in memory: base models, ensemble weights, the accuracy its drift check holds it to, its cutoff."""

    models: dict[str, Any]
    weights: np.ndarray
    features: list[str]
    reference_accuracy: float
    trained_until: dt.datetime
    since_row: int  # first bar it scores (the bar after it was put in place)

    def proba(self, X: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        from market_mlops.model.ensemble import blend
        from market_mlops.model.ensemble_model import booster_proba

        base = [booster_proba(self.models[m], X) for m in ("rf", "xgb", "lgbm")]
        return blend(base, self.weights if weights is None else weights)


@dataclass
class Series:
    """One model's bars with every feature and label over the whole range (features are causal, so a bar's values
    equal what a run at that time computed); `resolved_at[i]`: the row whose bar completes row i's label."""

    symbol: str
    timeframe: str
    ts: pd.Series
    X: np.ndarray
    y: np.ndarray  # -1 where the label is unknown at the end of the data
    close: np.ndarray
    usable: np.ndarray
    sessions: np.ndarray  # session date of each bar
    horizon: int

    @property
    def resolved_at(self) -> np.ndarray:
        return np.arange(len(self.y)) + self.horizon


@dataclass
class PolicyRun:
    name: str
    parts: frozenset[str]
    champion: Champion
    proba: np.ndarray  # the stitched forecasts: row -> class probabilities of the champion in place at that bar
    events: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dt.datetime] = field(default_factory=list)
    compute_s: float = 0.0


def _series(dataset: Path, symbol: str, timeframe: str, start: dt.datetime, end: dt.datetime,
            cfg: PipelineConfig) -> Series:
    from market_mlops.data.coverage import assign_sessions
    from market_mlops.data.dataset import load_bars
    from market_mlops.model.features import build_features, feature_columns
    from market_mlops.model.labels import labels_and_usable_rows

    spec, benchmark = cfg.spec(timeframe), cfg.universe.benchmark
    since = start - dt.timedelta(days=365 * cfg.training.history_years + spec.warmup_days)
    bars = load_bars(dataset, timeframe, [symbol, *([benchmark] if benchmark else [])], until=end, since=since)
    own = bars[bars["symbol"] == symbol].sort_values("ts").reset_index(drop=True)
    if own.empty:
        raise ValueError(f"no {symbol} {timeframe} bars in the data version between {since:%Y-%m-%d} and {end:%Y-%m-%d}")
    bench = bars[bars["symbol"] == benchmark] if benchmark else None
    feats = build_features(own, spec.bars_per_year, bench)
    cols = feature_columns(feats)
    labels, usable = labels_and_usable_rows(feats, own["close"], cols, spec.horizon, spec.threshold)
    sessions = assign_sessions(cfg.universe.calendar_of(symbol), own["ts"], daily=spec.daily).to_numpy()
    return Series(symbol, timeframe, own["ts"], feats[cols].to_numpy(dtype=np.float32),
                  labels.fillna(-1).to_numpy().astype(int), own["close"].to_numpy(dtype=float), usable.to_numpy(),
                  sessions, spec.horizon)


def _train(dataset: Path, series: Series, until: dt.datetime, cfg: PipelineConfig) -> tuple[Champion, Any, Any]:
    """The retrain task's training for a cutoff: the champion it would register, its holdout evaluation and the
    gate's inputs (challenger probabilities and baseline predictions on the holdout rows)."""
    from market_mlops.model.evaluation import baseline_predictions, evaluate_holdout
    from market_mlops.model.training import reference_accuracy, train_ensemble
    from market_mlops.tasks.retrain import training_frame

    spec = cfg.spec(series.timeframe)
    X, y, bars = training_frame(dataset, series.symbol, series.timeframe, cfg, until, cfg.training.history_years)
    trained = train_ensemble(X, y, cfg.training, spec.horizon)
    hold = trained.holdout_index
    evaluation = evaluate_holdout(y, trained.holdout_proba, bars["close"].to_numpy(dtype=float), hold,
                                  trained.train_index, spec.horizon, spec.bars_per_year)
    reference = reference_accuracy(trained.oof_accuracy, trained.oof_rows, float(evaluation["model_accuracy"]), len(hold))
    first_after = int((series.ts < pd.Timestamp(until)).sum())  # the first bar at or after the cutoff
    champion = Champion(trained.models, trained.weights, list(X.columns), reference, until, first_after)
    gate_inputs = (X.iloc[hold].to_numpy(dtype=np.float32), y[hold], trained.holdout_proba, evaluation,
                   baseline_predictions(y, hold, trained.train_index, spec.horizon))
    return champion, gate_inputs, evaluation


def _retrain(dataset: Path, run: PolicyRun, series: Series, until: dt.datetime, kind: str, day: dt.date,
             cfg: PipelineConfig) -> None:
    """A retrain the policy schedules, gated against its champion; a retrain that cannot train (too little history,
    a class missing from a window) fails as its DAG task would, and the champion stays."""
    try:
        challenger, gate_inputs, _ = _train(dataset, series, until, cfg)
    except ValueError as error:
        run.events.append({"at": day.isoformat(), "kind": kind, "decision": "failed", "reason": str(error)})
        return
    run.events.append({"at": day.isoformat(), "kind": kind, **_gate(run, series, challenger, gate_inputs, cfg)})


def _gate(run: PolicyRun, series: Series, challenger: Champion, gate_inputs: Any, cfg: PipelineConfig,
          weights_only: bool = False) -> dict[str, str]:
    """The suite's gate against this policy's champion on the challenger's evaluation rows; promotes in memory."""
    from market_mlops.tasks.promotion import gate_decision

    X_rows, y_rows, proba, evaluation, baselines = gate_inputs
    champion_pred = run.champion.proba(X_rows).argmax(axis=1)
    gate = gate_decision(None, y_rows, proba, evaluation, baselines, series.horizon, "current", champion_pred,
                         series.horizon, False, cfg)
    if gate.decision.promote:
        if weights_only:
            challenger.reference_accuracy = run.champion.reference_accuracy  # same base models, same reference
        run.champion = challenger
        run.proba[challenger.since_row:] = challenger.proba(series.X[challenger.since_row:])
    return {"decision": gate.decision.outcome, "reason": gate.decision.reason}


def _refresh(run: PolicyRun, series: Series, now_row: int, moment: dt.datetime, cfg: PipelineConfig) -> dict[str, str]:
    """The weekly refresh: new weights for the champion's base models on the recent resolved bars (the refresh
    task's window, split and shrinkage), gated on the bars they were not fitted on."""
    from market_mlops.model.ensemble import fit_weights
    from market_mlops.model.ensemble_model import booster_proba
    from market_mlops.model.evaluation import baseline_predictions, evaluate_holdout
    from market_mlops.tasks.refresh import FIT_SHARE

    spec = cfg.spec(series.timeframe)
    known = np.flatnonzero(series.usable[:now_row] & (series.resolved_at[:now_row] < now_row))[-spec.refresh_window:]
    cut = int(len(known) * FIT_SHARE)
    fit, evaluate = np.arange(0, cut - spec.horizon), np.arange(cut, len(known))
    if len(fit) < 30 or len(evaluate) < 20:
        return {"decision": "skipped", "reason": f"{len(known)} resolved bars: too few to refit the weights"}
    X, y = series.X[known], series.y[known]
    base = [booster_proba(run.champion.models[m], X) for m in ("rf", "xgb", "lgbm")]
    weights, _ = fit_weights([b[fit] for b in base], y[fit], min_rows=cfg.training.refresh_min_rows,
                             prior=run.champion.weights, prior_rows=cfg.training.weight_prior_rows)
    challenger = Champion(run.champion.models, weights, run.champion.features, run.champion.reference_accuracy,
                          moment, now_row)
    proba = challenger.proba(X[evaluate])
    evaluation = evaluate_holdout(y, proba, series.close[known], evaluate, fit, spec.horizon, spec.bars_per_year)
    return _gate(run, series, challenger, (X[evaluate], y[evaluate], proba, evaluation,
                                           baseline_predictions(y, evaluate, fit, spec.horizon)), cfg, weights_only=True)


def _drift_check(run: PolicyRun, series: Series, end_row: int, moment: dt.datetime, cfg: PipelineConfig) -> bool:
    """After a session: the champion's resolved forecasts against its reference accuracy; True on an emergency
    outside the cooldown (recorded as a trigger)."""
    from market_mlops.monitoring.bands import accuracy_band, decide_emergency

    start = run.champion.since_row
    rows = np.arange(start, end_row)
    rows = rows[series.usable[rows] & (series.resolved_at[rows] < end_row)][-cfg.drift.window:]
    if not len(rows):
        return False
    realized = float((run.proba[rows].argmax(axis=1) == series.y[rows]).mean())
    band = accuracy_band((realized - run.champion.reference_accuracy) * 100, len(rows), cfg.drift)
    decision = decide_emergency(band, moment, run.triggers, cfg.drift.cooldown_days)
    if decision.retrain:
        run.triggers.append(moment)
    return decision.retrain


def _replay_series(dataset: Path, series: Series, start: dt.datetime, end: dt.datetime,
                   policies: dict[str, frozenset[str]], cfg: PipelineConfig) -> dict[str, PolicyRun]:
    from market_mlops.data import calendar

    initial, _, _ = _train(dataset, series, start, cfg)
    runs = {name: PolicyRun(name, parts, initial, np.full((len(series.y), 3), np.nan)) for name, parts in policies.items()}
    for run in runs.values():
        run.proba[initial.since_row:] = initial.proba(series.X[initial.since_row:])
    exchange = cfg.universe.calendar_of(series.symbol)
    days = [d for d in calendar.sessions_in_interval(exchange, start, end)]
    rows_of = pd.Series(np.arange(len(series.sessions))).groupby(series.sessions).agg(["min", "max"])
    previous: dt.date | None = None
    for day in days:
        if day not in rows_of.index:
            continue
        first, last = int(rows_of.loc[day, "min"]), int(rows_of.loc[day, "max"])
        for run in runs.values():
            started = time.perf_counter()
            if "monthly" in run.parts and previous is not None and day.month != previous.month:
                _retrain(dataset, run, series, dt.datetime(day.year, day.month, 1, tzinfo=dt.UTC), "monthly retrain",
                         day, cfg)
            if "weekly" in run.parts and previous is not None and day.isocalendar()[1] != previous.isocalendar()[1]:
                moment = dt.datetime.combine(day, dt.time(6), dt.UTC)
                run.events.append({"at": day.isoformat(), "kind": "weekly refresh",
                                   **_refresh(run, series, first, moment, cfg)})
            if "emergency" in run.parts:
                close = calendar.session(exchange, day).close.to_pydatetime()
                if _drift_check(run, series, last + 1, close, cfg):
                    _retrain(dataset, run, series, close, "emergency retrain", day, cfg)
            run.compute_s += time.perf_counter() - started
        previous = day
    return runs


def _scores(series: Series, run: PolicyRun, start: dt.datetime, end: dt.datetime, bars_per_year: int) -> dict[str, Any]:
    """Realized accuracy and IC of the stitched forecasts, by month and overall (resolved, usable bars only)."""
    from market_mlops.model.evaluation import finance_metrics

    ts = series.ts
    inside = ((ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))).to_numpy()
    rows = np.flatnonzero(inside & series.usable & (series.y >= 0) & ~np.isnan(run.proba[:, 0]))
    forward = np.zeros(len(series.close))
    forward[:-series.horizon] = series.close[series.horizon:] / series.close[:-series.horizon] - 1
    next_bar = np.append(series.close[1:] / series.close[:-1] - 1, 0.0)

    def summary(part: np.ndarray) -> dict[str, Any]:
        proba = run.proba[part]
        metrics = finance_metrics(proba, forward[part], next_bar[part], bars_per_year) if len(part) > 2 else {}
        return {"forecasts": int(len(part)), "accuracy": float((proba.argmax(axis=1) == series.y[part]).mean())
                if len(part) else float("nan"), "ic": metrics.get("ic", float("nan"))}

    months = ts.iloc[rows].dt.strftime("%Y-%m").to_numpy()
    by_month = [{"month": m, **summary(rows[months == m])} for m in sorted(set(months))]
    kinds = [e["kind"] for e in run.events]
    return {**summary(rows), "months": by_month, "retrains": sum(k.endswith("retrain") for k in kinds),
            "refreshes": kinds.count("weekly refresh"), "emergencies": kinds.count("emergency retrain"),
            "promotions": sum(e["decision"] == "promoted" for e in run.events), "compute_s": round(run.compute_s, 2),
            "events": run.events}


def replay(start: dt.date, end: dt.date, policies: Sequence[str] = DEFAULT_POLICIES, data_version: str | None = None,
           symbols: list[str] | None = None, timeframes: list[str] | None = None,
           cfg: PipelineConfig | None = None) -> dict[str, Any]:
    """The replay report (see the module docstring), also written under MLOPS_HOME/replays/ and logged to MLflow."""
    from market_mlops.data.versioning import materialize, version_history

    cfg = cfg or get_config()
    parsed = {name: parse_policy(name) for name in dict.fromkeys(["static", *policies])}
    history = version_history(cfg)
    if not history:
        raise ValueError("no data version logged: import or ingest history first (market-mlops import FILES)")
    record = history[-1] if data_version in (None, "latest") else next(
        (r for r in history if r["md5"].startswith(str(data_version))), None)
    if record is None:
        raise ValueError(f"data version {data_version!r} is not in the version log; `market-mlops versions` lists them")
    dataset = materialize(cfg.data_root, record["md5"], cfg.dvc_remote_url, cfg.storage.s3_endpoint_url)
    begin, finish = (dt.datetime.combine(d, dt.time(), dt.UTC) for d in (start, end))
    if finish <= begin:
        raise ValueError(f"the replay range must end after it starts (got {start} .. {end})")
    started = time.perf_counter()
    models: dict[str, Any] = {}
    for symbol, timeframe in cfg.pairs(symbols, timeframes):
        series = _series(dataset, symbol, timeframe, begin, finish, cfg)
        runs = _replay_series(dataset, series, begin, finish, parsed, cfg)
        bpy = cfg.spec(timeframe).bars_per_year
        models[f"{symbol}-{timeframe}"] = {name: _scores(series, run, begin, finish, bpy) for name, run in runs.items()}
        log.info("replayed %s %s: %s", symbol, timeframe,
                 {n: round(r["accuracy"], 3) for n, r in models[f"{symbol}-{timeframe}"].items()})
    report = {"data_version": record["md5"], "start": start.isoformat(), "end": end.isoformat(),
              "policies": list(parsed), "models": models, "summary": summarize(models, list(parsed)),
              "seconds": round(time.perf_counter() - started, 1)}
    _write_and_log(report, cfg)
    return report


def summarize(models: dict[str, Any], policies: list[str]) -> dict[str, Any]:
    """Per policy, pooled over models: accuracy (forecast-weighted), mean IC, counts, compute, and the accuracy
    difference with the static model in points; the monthly accuracy for the chart."""
    out: dict[str, Any] = {}
    for name in policies:
        results = [m[name] for m in models.values()]
        forecasts = sum(r["forecasts"] for r in results)
        accuracy = sum(r["accuracy"] * r["forecasts"] for r in results if r["forecasts"]) / max(forecasts, 1)
        months: dict[str, list[tuple[float, int]]] = {}
        for r in results:
            for m in r["months"]:
                months.setdefault(m["month"], []).append((m["accuracy"], m["forecasts"]))
        out[name] = {"accuracy": accuracy, "ic": float(np.nanmean([r["ic"] for r in results])) if results else float("nan"),
                     "forecasts": forecasts, **{k: sum(r[k] for r in results) for k in
                                                ("retrains", "refreshes", "emergencies", "promotions")},
                     "compute_s": round(sum(r["compute_s"] for r in results), 1),
                     "months": {m: sum(a * n for a, n in v) / max(sum(n for _, n in v), 1) for m, v in sorted(months.items())}}
    static = out["static"]["accuracy"]
    for value in out.values():
        value["vs_static_points"] = round((value["accuracy"] - static) * 100, 2)
    return out


def table(report: dict[str, Any]) -> str:
    """The comparison, one line per policy."""
    lines = [f"replay {report['start']} .. {report['end']} on data version {report['data_version'][:12]} "
             f"({len(report['models'])} model(s), {report['seconds']} s)",
             f"{'policy':<28} {'accuracy':>8} {'vs static':>9} {'IC':>7} {'retrains':>8} {'refreshes':>9} "
             f"{'emergency':>9} {'promoted':>8} {'compute s':>9}"]
    for name, s in report["summary"].items():
        lines.append(f"{name:<28} {s['accuracy']:8.3f} {s['vs_static_points']:+8.2f}p {s['ic']:7.3f} {s['retrains']:8d} "
                     f"{s['refreshes']:9d} {s['emergencies']:9d} {s['promotions']:8d} {s['compute_s']:9.1f}")
    return "\n".join(lines)


def chart(report: dict[str, Any]) -> str:
    """Monthly realized accuracy per policy (SVG)."""
    from market_mlops.monitoring.charts import multi_line_chart

    months = sorted({m for s in report["summary"].values() for m in s["months"]})
    series: dict[str, Sequence[float | None]] = {name: [s["months"].get(m) for m in months]
                                                 for name, s in report["summary"].items()}
    return multi_line_chart(months, series, title="realized accuracy by month, per retrain policy")


def _write_and_log(report: dict[str, Any], cfg: PipelineConfig) -> dict[str, str]:
    """report.json and chart.svg under MLOPS_HOME/replays/<range>-<version>/, and one MLflow run of the experiment
    `market-replay` holding both, with each policy's accuracy as a metric; the report names both places."""
    import mlflow

    from market_mlops.registry import store
    from market_mlops.state.store import json_text

    key = f"replay-{report['start']}-{report['end']}-{report['data_version'][:12]}"
    folder = cfg.home / "replays" / key
    folder.mkdir(parents=True, exist_ok=True)
    with mlflow.start_run(experiment_id=store.experiment_id(cfg, REPLAY_EXPERIMENT), run_name=key,
                          tags={"mlops.run_key": key, "data.version": report["data_version"]}) as run:
        report["artifacts"] = {"folder": str(folder), "mlflow_run_id": str(run.info.run_id)}
        (folder / "report.json").write_text(json.dumps(json.loads(json_text(report)), indent=2))
        (folder / "chart.svg").write_text(chart(report))
        mlflow.log_params({"start": report["start"], "end": report["end"], "policies": ",".join(report["policies"]),
                           "models": len(report["models"])})
        mlflow.log_metrics({f"{name.replace('+', '_')}.{k}": float(v) for name, s in report["summary"].items()
                            for k, v in s.items() if k in ("accuracy", "ic", "vs_static_points") and np.isfinite(v)})
        mlflow.log_artifacts(str(folder), "replay")
    return report["artifacts"]


REPLAY_EXPERIMENT = "market-replay"
