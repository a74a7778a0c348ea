"""`market-mlops replay`: what the retrain policy would have done over history, and whether it paid.

For each model and each policy (a static model trained once at the start; the monthly full retrain; the weekly
weight refresh; the drift-triggered emergency retrain with its cooldown; any combination), the replay walks the
sessions of a date range on one data version, in process: at the first session of a month the retrain the cron
runs (data before the 1st), at the first session of a week the weight refresh (resolved bars before it), after each
session the drift check (the change detectors of the champion's resolved forecasts against its reference accuracy,
the band, the cooldown) and, on an emergency, a retrain on the data up to that close. Every decision is the suite's own
code: `training_frame` and `train_ensemble` (the retrain task's features, labels, folds and fits), `fit_weights`
with the refresh's shrinkage, `gate_decision` (the same gate), `monitoring.detector.detect` and `decide_emergency`. Nothing is registered: the champions live in memory, numbered like registry versions (v1 is
the initial model) so that every reason names a real one. The forecasts of whichever champion each policy had at
each bar are stitched into one out-of-sample series per policy.

The static policy is what production would have served without retraining: the initial model only if it passes the
gate, else the better baseline (as a retrain with no champion registers it). Bars after `--to` resolve the labels of
the last sessions' forecasts and are used for nothing else. Each policy's accuracy and IC are compared with the
static policy's on the same forecasts, with block-bootstrap intervals (`arch`), so "does the schedule pay?" gets a
number and its uncertainty, or an honest "no difference".
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market_mlops.config import PipelineConfig, Stress, get_config
from market_mlops.model.baselines import BaselineTables
from market_mlops.model.calibration import Calibration

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
    """A model in memory: served base models (or a baseline rule), ensemble weights, the accuracy its drift check
    holds it to, its cutoff and the rows it learned."""

    models: dict[str, Any]
    weights: np.ndarray
    features: list[str]
    reference_accuracy: float
    trained_until: dt.datetime
    since_row: int  # first bar it scores (the bar after it was put in place)
    fit_end_row: int = -1  # the last bar (row of the series) its base models learned
    version: str = "1"
    rule: str | None = None  # a baseline: climatology | persistence
    tables: BaselineTables | None = None  # its baselines as counted on the rows it learned
    calibration: Calibration | None = None  # a model's calibration pool
    positions: np.ndarray | None = None  # its features' columns in the series' feature table (None: all of them)
    reference_rows: float = 0.0  # the out-of-sample rows its reference accuracy was measured on
    holdout_rows: float = 0.0  # its holdout's (a baseline's reference is measured there)

    def base_probas(self, X: np.ndarray) -> list[np.ndarray]:
        """Each base model's probabilities on rows of the series' full feature table (it reads its own features)."""
        from market_mlops.model.ensemble_model import booster_proba

        own = X if self.positions is None else X[:, self.positions]
        return [booster_proba(self.models[m], own) for m in ("rf", "xgb", "lgbm")]

    def proba(self, X: np.ndarray, weights: np.ndarray | None = None, last_known: np.ndarray | None = None) -> np.ndarray:
        """Served probabilities on rows of the series (`last_known`: their last known labels, -1 where none)."""
        from market_mlops.model.baselines import PERSISTENCE, floor_probabilities
        from market_mlops.model.ensemble import blend

        if self.rule is not None and self.tables is not None:
            return self.tables.probabilities(self.rule, last_known, len(X))
        blended = blend(self.base_probas(X), self.weights if weights is None else weights)
        if self.calibration is None or self.tables is None:
            return floor_probabilities(blended)
        return self.calibration.apply(blended, self.tables.probabilities(PERSISTENCE, last_known, len(X)))

    def score(self, series: Series, rows: slice | np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Its forecasts on rows of the series (persistence, in a baseline or a model's pool, reads the labels known
        by then)."""
        return self.proba(series.X[rows], weights, last_known=series.last_known[rows])


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

    @property
    def last_known(self) -> np.ndarray:
        """The label of bar t - horizon, known at bar t (-1 before there is one): what persistence calls."""
        known = np.full(len(self.y), -1)
        known[self.horizon:] = self.y[:-self.horizon]
        return known


@dataclass
class PolicyRun:
    name: str
    parts: frozenset[str]
    champion: Champion
    proba: np.ndarray  # the stitched forecasts: row -> class probabilities of the champion in place at that bar
    events: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dt.datetime] = field(default_factory=list)
    compute_s: float = 0.0
    versions: int = 1  # versions made so far (the next challenger is v<versions + 1>)

    def next_version(self) -> str:
        self.versions += 1
        return str(self.versions)


def resolution_days(horizon: int, minutes: int) -> dt.timedelta:
    """Calendar days after the replay's end that hold `horizon` more bars (weekends and holidays included)."""
    sessions = math.ceil(horizon * minutes / 390) if minutes < 1440 else horizon  # a stock session is 390 minutes
    return dt.timedelta(days=2 * sessions + 7)


def _series(dataset: Path, symbol: str, timeframe: str, start: dt.datetime, end: dt.datetime,
            cfg: PipelineConfig) -> Series:
    from market_mlops.data.coverage import assign_sessions
    from market_mlops.data.dataset import load_bars
    from market_mlops.model.features import build_features, feature_columns
    from market_mlops.model.labels import labels_and_usable_rows

    spec, benchmark = cfg.spec(timeframe), cfg.universe.benchmark
    since = start - dt.timedelta(days=365 * cfg.training.history_years + spec.warmup_days)
    resolve_until = end + resolution_days(spec.horizon, spec.minutes)  # labels of the last forecasts, nothing else
    bars = load_bars(dataset, timeframe, [symbol, *([benchmark] if benchmark else [])], until=resolve_until, since=since)
    own = bars[bars["symbol"] == symbol].sort_values("ts").reset_index(drop=True)
    if own.empty:
        raise ValueError(f"no {symbol} {timeframe} bars in the data version between {since:%Y-%m-%d} and {end:%Y-%m-%d}")
    bench = bars[bars["symbol"] == benchmark] if benchmark else None
    feats = build_features(own, spec.bars_per_year, bench)
    cols = feature_columns(feats)
    labels, usable = labels_and_usable_rows(feats, own["close"], cols, spec.horizon, cfg.labels_of(symbol, timeframe))
    sessions = assign_sessions(cfg.universe.calendar_of(symbol), own["ts"], daily=spec.daily).to_numpy()
    return Series(symbol, timeframe, own["ts"], feats[cols].to_numpy(dtype=np.float32),
                  labels.fillna(-1).to_numpy().astype(int), own["close"].to_numpy(dtype=float), usable.to_numpy(),
                  sessions, spec.horizon)


@dataclass
class GateInputs:
    """What the gate reads of a challenger: its evaluation rows (as rows of the series), their labels, its
    probabilities and holdout figures, and the baselines' calls there."""

    rows: np.ndarray
    y: np.ndarray
    proba: np.ndarray
    evaluation: dict[str, Any]
    baselines: dict[str, np.ndarray]


def _train(dataset: Path, series: Series, until: dt.datetime, version: str,
           cfg: PipelineConfig) -> tuple[Champion, GateInputs]:
    """The retrain task's training for a cutoff: the version it would register (refit, `training.refit`) and the
    gate's inputs from its evaluated fit."""
    from market_mlops.model.evaluation import evaluate_holdout
    from market_mlops.model.training import reference_accuracy, train_ensemble
    from market_mlops.tasks.retrain import training_frame

    spec = cfg.spec(series.timeframe)
    X, y, bars = training_frame(dataset, series.symbol, series.timeframe, cfg, until, cfg.training.history_years)
    last_known = bars["last_known_label"].to_numpy(dtype=float)
    trained = train_ensemble(X, y, cfg.training, spec.horizon, last_known=last_known)
    hold = trained.holdout_index
    evaluation = evaluate_holdout(y, trained.holdout_proba, bars["close"].to_numpy(dtype=float), hold,
                                  trained.train_index, spec.horizon, spec.bars_per_year, last_known,
                                  baselines=trained.holdout_baselines)
    reference = reference_accuracy(trained.oof_accuracy, trained.oof_rows, float(evaluation["model_accuracy"]), len(hold))
    position = {stamp: i for i, stamp in enumerate(series.ts)}  # the training rows as rows of the series
    rows = np.array([position[t] for t in bars["ts"]])
    first_after = int((series.ts < pd.Timestamp(until)).sum())  # the first bar at or after the cutoff
    columns = list(X.columns)
    champion = Champion(trained.models, trained.weights, trained.feature_names, reference, until, first_after,
                        int(rows[trained.fit_rows - 1]), version, tables=trained.baselines,
                        calibration=trained.calibration,
                        positions=np.array([columns.index(f) for f in trained.feature_names]),
                        reference_rows=float(trained.oof_rows + len(hold)), holdout_rows=float(len(hold)))
    return champion, GateInputs(rows[hold], y[hold], trained.holdout_proba, evaluation, trained.holdout_baselines)


def _baseline(challenger: Champion, gate: Any, version: str) -> Champion:
    """The better baseline of a challenger's holdout, served as `version` (what a retrain with no champion registers)."""
    from market_mlops.model.baselines import CLIMATOLOGY

    rule = str(gate.summary.get("baseline_compared") or CLIMATOLOGY)
    accuracy = float(gate.summary[f"{rule}_accuracy"])
    return Champion({}, np.zeros(0), challenger.features, accuracy, challenger.trained_until, challenger.since_row,
                    challenger.fit_end_row, version, rule=rule, tables=challenger.tables,
                    reference_rows=challenger.holdout_rows, holdout_rows=challenger.holdout_rows)


def _install(run: PolicyRun, series: Series, champion: Champion) -> None:
    run.champion = champion
    run.proba[champion.since_row:] = champion.score(series, slice(champion.since_row, None))


def _retrain(dataset: Path, run: PolicyRun, series: Series, until: dt.datetime, kind: str, day: dt.date,
             cfg: PipelineConfig, emergency: bool = False) -> None:
    """A retrain the policy schedules, gated against its champion; a retrain that cannot train (too little history,
    a class missing from a window) fails as its DAG task would, and the champion stays."""
    version = run.next_version()
    try:
        challenger, inputs = _train(dataset, series, until, version, cfg)
    except ValueError as error:
        run.events.append({"at": day.isoformat(), "kind": kind, "version": version, "decision": "failed",
                           "reason": str(error)})
        return
    run.events.append({"at": day.isoformat(), "kind": kind, "version": version,
                       **_gate(run, series, challenger, inputs, cfg, emergency=emergency)})


def _champion_side(champion: Champion, series: Series, inputs: GateInputs, cfg: PipelineConfig) -> Any:
    """The champion as the gate sees it: scored on the evaluation rows it never learned (`ChampionOnHoldout`)."""
    from market_mlops.tasks.promotion import ChampionOnHoldout

    horizon = series.horizon
    if champion.rule is not None:
        return ChampionOnHoldout(champion.version, np.ones(len(inputs.rows), dtype=bool),
                                 champion.score(series, inputs.rows), horizon, is_baseline=True, rule=champion.rule)
    unseen = inputs.rows > champion.fit_end_row + horizon
    need = cfg.training.min_compare_outcomes * horizon
    if unseen.sum() < need:
        return ChampionOnHoldout(champion.version, unseen, None, horizon, note=(
            f"it learned all but {int(unseen.sum())} of the {len(unseen)} holdout rows (need {need}: "
            f"{cfg.training.min_compare_outcomes} outcomes of {horizon} bars)"))
    return ChampionOnHoldout(champion.version, unseen, champion.score(series, inputs.rows[unseen]), horizon)


def _gate(run: PolicyRun, series: Series, challenger: Champion, inputs: GateInputs, cfg: PipelineConfig,
          weights_only: bool = False, emergency: bool = False) -> dict[str, Any]:
    """The suite's gate against this policy's champion on the challenger's evaluation rows; promotes in memory (and,
    as the retrain task does, falls back to the better baseline)."""
    import dataclasses

    from market_mlops.tasks.promotion import gate_decision

    gate = gate_decision(None, inputs.y, inputs.proba, inputs.evaluation, inputs.baselines, series.horizon,
                         _champion_side(run.champion, series, inputs, cfg), False, cfg,
                         require_improvement=weights_only, kind="refresh" if weights_only else "retrain")
    if emergency and not gate.decision.promote and not gate.demote and run.champion.rule is None:
        gate = dataclasses.replace(gate, demote=f"champion v{run.champion.version} is in the emergency band and no "
                                                "challenger passed the gate")
    if gate.decision.promote:
        if weights_only:
            challenger.reference_accuracy = run.champion.reference_accuracy  # same base models, same reference
        _install(run, series, challenger)
    elif gate.demote and not weights_only:  # the retrain task registers the better baseline as champion
        baseline = _baseline(challenger, gate, run.next_version())
        _install(run, series, baseline)
        return {"decision": gate.decision.outcome, "reason": gate.decision.reason,
                "serving": f"v{baseline.version}, the {baseline.rule} baseline: {gate.demote}"}
    return {"decision": gate.decision.outcome, "reason": gate.decision.reason}


def _refresh(run: PolicyRun, series: Series, now_row: int, moment: dt.datetime, cfg: PipelineConfig) -> dict[str, Any]:
    """The weekly refresh: new weights for the champion's base models on the recent resolved bars they never learned
    (the refresh task's window, split, shrinkage and error spending), gated on the bars they were not fitted on."""
    from market_mlops.model.ensemble import fit_weights
    from market_mlops.model.evaluation import baseline_probabilities, evaluate_holdout
    from market_mlops.tasks.refresh import split_window

    spec = cfg.spec(series.timeframe)
    champion = run.champion
    if champion.rule is not None:
        return {"decision": "skipped", "reason": "the champion is a baseline: no ensemble weights to refresh"}
    known = np.flatnonzero(series.usable[:now_row] & (series.resolved_at[:now_row] < now_row))
    known = known[known > champion.fit_end_row + spec.horizon][-spec.refresh_window:]
    split = split_window(len(known), spec.horizon, max(30, cfg.training.refresh_min_rows), 20, spec.bars_per_year / 52)
    if isinstance(split, str):
        return {"decision": "skipped", "reason": split}
    fit, evaluate = split
    X, y = series.X[known], series.y[known]
    base = champion.base_probas(X)
    weights, _ = fit_weights([b[fit] for b in base], y[fit], min_rows=cfg.training.refresh_min_rows,
                             prior=champion.weights, prior_rows=cfg.training.weight_prior_rows)
    version = run.next_version()
    challenger = Champion(champion.models, weights, champion.features, champion.reference_accuracy, moment, now_row,
                          max(champion.fit_end_row, int(known[fit[-1]])), version,  # its weights learned these
                          tables=champion.tables, calibration=champion.calibration, positions=champion.positions,
                          reference_rows=champion.reference_rows, holdout_rows=champion.holdout_rows)
    proba = challenger.score(series, known[evaluate])
    last_known = np.where(series.last_known[known] >= 0, series.last_known[known], np.nan)
    baselines = baseline_probabilities(y, evaluate, fit, spec.horizon, last_known)
    evaluation = evaluate_holdout(y, proba, series.close[known], evaluate, fit, spec.horizon, spec.bars_per_year,
                                  last_known, baselines=baselines)
    inputs = GateInputs(known[evaluate], y[evaluate], proba, evaluation, baselines)
    return {"version": version, **_gate(run, series, challenger, inputs, cfg, weights_only=True)}


def _drift_check(run: PolicyRun, series: Series, end_row: int, moment: dt.datetime, cfg: PipelineConfig) -> bool:
    """After a session: the champion's resolved forecasts since it began serving against its reference accuracy
    (`monitoring.detector`, as the drift check); True on an emergency outside the cooldown (recorded as a trigger)."""
    from market_mlops.monitoring.bands import decide_emergency
    from market_mlops.monitoring.detector import SESSIONS_PER_YEAR, detect

    start = run.champion.since_row
    rows = np.arange(start, end_row)
    rows = rows[series.usable[rows] & (series.resolved_at[rows] < end_row)]
    if not len(rows):
        return False
    hits = run.proba[rows].argmax(axis=1) == series.y[rows]
    spec = cfg.spec(series.timeframe)
    check = detect(hits, run.champion.reference_accuracy, run.champion.reference_rows, series.horizon,
                   max(1.0, spec.bars_per_year / SESSIONS_PER_YEAR), cfg.drift)
    decision = decide_emergency(check.band or "normal", moment, run.triggers, cfg.drift.cooldown_days)
    if decision.retrain:
        run.triggers.append(moment)
    return decision.retrain


def _initial(dataset: Path, series: Series, start: dt.datetime, cfg: PipelineConfig) -> tuple[Champion, dict[str, Any]]:
    """What production serves at the start: the model trained then if it passes the gate (no champion yet), else the
    better baseline; and the event saying which."""
    from market_mlops.tasks.promotion import gate_decision

    model, inputs = _train(dataset, series, start, "1", cfg)
    gate = gate_decision(None, inputs.y, inputs.proba, inputs.evaluation, inputs.baselines, series.horizon, None,
                         False, cfg)
    event = {"at": start.date().isoformat(), "kind": "initial model", "version": "1",
             "decision": gate.decision.outcome, "reason": gate.decision.reason}
    if gate.decision.promote:
        return model, event
    baseline = _baseline(model, gate, "2")
    return baseline, {**event, "serving": f"v2, the {baseline.rule} baseline (no model has beaten it yet)"}


def _replay_series(dataset: Path, series: Series, start: dt.datetime, end: dt.datetime,
                   policies: dict[str, frozenset[str]], cfg: PipelineConfig) -> dict[str, PolicyRun]:
    from market_mlops.data import calendar

    initial, event = _initial(dataset, series, start, cfg)
    runs = {name: PolicyRun(name, parts, initial, np.full((len(series.y), 3), np.nan), [dict(event)],
                            versions=int(initial.version)) for name, parts in policies.items()}
    for run in runs.values():
        _install(run, series, initial)
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
                    _retrain(dataset, run, series, close, "emergency retrain", day, cfg, emergency=True)
            run.compute_s += time.perf_counter() - started
        previous = day
    return runs


@dataclass
class Scored:
    """A policy's resolved forecasts in the replayed range: the series' rows, whether each call was right, the score
    P(bullish) - P(bearish) and the forward return it is read against."""

    rows: np.ndarray
    correct: np.ndarray
    score: np.ndarray
    forward: np.ndarray
    horizon: int


def _scored(series: Series, run: PolicyRun, start: dt.datetime, end: dt.datetime) -> Scored:
    ts = series.ts
    inside = ((ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))).to_numpy()
    rows = np.flatnonzero(inside & series.usable & (series.y >= 0) & ~np.isnan(run.proba[:, 0]))
    forward = np.zeros(len(series.close))
    forward[:-series.horizon] = series.close[series.horizon:] / series.close[:-series.horizon] - 1
    proba = run.proba[rows]
    return Scored(rows, (proba.argmax(axis=1) == series.y[rows]).astype(float), proba[:, 2] - proba[:, 0],
                  forward[rows], series.horizon)


def _scores(series: Series, run: PolicyRun, start: dt.datetime, end: dt.datetime, bars_per_year: int,
            stress: Stress | None = None) -> dict[str, Any]:
    """Realized accuracy and IC of the stitched forecasts, by month and overall (resolved, usable bars only), and
    (`stress`) their numbers on the named stress windows they cover and their book over resampled paths."""
    from market_mlops.model.evaluation import finance_metrics
    from market_mlops.model.stress import book_returns, bootstrap_book, stress_rows

    ts = series.ts
    scored = _scored(series, run, start, end)
    rows = scored.rows
    next_bar = np.append(series.close[1:] / series.close[:-1] - 1, 0.0)
    forward = np.zeros(len(series.close))
    forward[:-series.horizon] = series.close[series.horizon:] / series.close[:-series.horizon] - 1

    def summary(part: np.ndarray) -> dict[str, Any]:
        proba = run.proba[part]
        metrics = finance_metrics(proba, forward[part], next_bar[part], bars_per_year) if len(part) > 2 else {}
        return {"forecasts": int(len(part)), "accuracy": float((proba.argmax(axis=1) == series.y[part]).mean())
                if len(part) else float("nan"), "ic": metrics.get("ic", float("nan"))}

    months = ts.iloc[rows].dt.strftime("%Y-%m").to_numpy()
    by_month = [{"month": m, **summary(rows[months == m])} for m in sorted(set(months))]
    later = [e for e in run.events if e["kind"] != "initial model"]
    kinds = [e["kind"] for e in later]
    refreshes = [e for e in later if e["kind"] == "weekly refresh"]
    stressed: dict[str, Any] = {}
    if stress is not None and len(rows):
        first = max(0, rows[0] - series.horizon)  # the labels resolved by the first forecast
        known_before = series.y[:first][(series.y[:first] >= 0) & series.usable[:first]]
        stressed = {"stress": stress_rows(ts.iloc[rows], run.proba[rows], series.y[rows], forward[rows],
                                          next_bar[rows], stress.windows, bars_per_year, y_before=known_before,
                                          horizon=series.horizon),
                    "bootstrap": bootstrap_book(book_returns(run.proba[rows], next_bar[rows]), bars_per_year,
                                                stress.bootstrap_paths, stress.seed)}
    return {**summary(rows), **stressed, "months": by_month, "retrains": sum(k.endswith("retrain") for k in kinds),
            "refreshes": len(refreshes), "refreshes_acted": sum(e["decision"] != "skipped" for e in refreshes),
            "skipped_because": skip_reasons(refreshes), "emergencies": kinds.count("emergency retrain"),
            "promotions": sum(e["decision"] == "promoted" for e in later), "compute_s": round(run.compute_s, 2),
            "serving_at_end": f"v{run.champion.version}" + (f" ({run.champion.rule} baseline)" if run.champion.rule else ""),
            "events": run.events}


def _ic(score: np.ndarray, forward: np.ndarray) -> float:
    """Pearson IC; a constant score (a majority baseline) carries no information: 0."""
    if len(score) < 3 or np.ptp(score) == 0 or np.ptp(forward) == 0:
        return 0.0
    return float(np.corrcoef(score, forward)[0, 1])


def _mean_ic(score: np.ndarray, forward: np.ndarray, series: np.ndarray) -> float:
    """The IC of each series (their returns have their own scales), averaged over series."""
    return float(np.mean([_ic(score[series == i], forward[series == i]) for i in np.unique(series)]))


def versus_static(policy: list[Scored], static: list[Scored], cfg: PipelineConfig) -> dict[str, Any]:
    """Accuracy and IC of a policy minus the static policy's on the same forecasts (pooled over models; the IC per
    series, then averaged), with two-sided `training.promotion_confidence` intervals from a circular block bootstrap
    (`arch`) whose block covers the labels' overlap (`gate_block_length`)."""
    from arch.bootstrap import CircularBlockBootstrap

    from market_mlops.model.evaluation import gate_block_length

    def joined(parts: list[Scored], what: str) -> np.ndarray:
        return np.concatenate([getattr(s, what) for s in parts]) if parts else np.zeros(0)

    a_correct, b_correct = joined(policy, "correct"), joined(static, "correct")
    a_score, b_score, forward = joined(policy, "score"), joined(static, "score"), joined(static, "forward")
    series = np.concatenate([np.full(len(s.rows), i) for i, s in enumerate(static)]) if static else np.zeros(0)
    horizon = max((s.horizon for s in static), default=1)
    diff = a_correct - b_correct
    out: dict[str, Any] = {"forecasts": int(len(diff)), "outcomes": round(len(diff) / horizon, 1)}
    accuracy_mean = float(diff.mean()) if len(diff) else float("nan")
    ic_mean = _mean_ic(a_score, forward, series) - _mean_ic(b_score, forward, series) if len(diff) else 0.0
    if len(diff) < 10 or (np.ptp(diff) == 0 and np.ptp(a_score - b_score) == 0):  # the same forecasts: no difference
        return {**out, "accuracy_diff": accuracy_mean, "accuracy_ci": [accuracy_mean, accuracy_mean],
                "ic_diff": ic_mean, "ic_ci": [ic_mean, ic_mean], "block": 1}
    block = gate_block_length(diff, horizon)
    level = cfg.training.promotion_confidence

    def both(d: np.ndarray, sa: np.ndarray, sb: np.ndarray, f: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return np.array([d.mean(), _mean_ic(sa, f, ids) - _mean_ic(sb, f, ids)])

    bootstrap = CircularBlockBootstrap(block, diff, a_score, b_score, forward, series,
                                       seed=np.random.default_rng(cfg.training.seed))
    interval = bootstrap.conf_int(both, reps=cfg.training.bootstrap_samples, method="percentile", size=level)
    return {**out, "accuracy_diff": accuracy_mean, "accuracy_ci": [float(interval[0, 0]), float(interval[1, 0])],
            "ic_diff": ic_mean, "ic_ci": [float(interval[0, 1]), float(interval[1, 1])], "block": block,
            "confidence": level}


def verdict(comparison: dict[str, Any]) -> str:
    """The comparison in words, on accuracy and on IC each: better, worse, or no measurable difference (its interval
    holds zero). One figure's verdict alone would contradict the other's interval printed beside it."""
    def said(interval: Any) -> str | None:
        low, high = interval
        if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
            return None
        return "better" if low > 0 else "worse" if high < 0 else None

    accuracy, ic = said(comparison["accuracy_ci"]), said(comparison.get("ic_ci", (None, None)))
    text = f"{accuracy} than static" if accuracy else "no measurable difference"
    return text + (f"; IC {ic} than static" if ic and ic != accuracy else "")


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
    scored: dict[str, list[Scored]] = {name: [] for name in parsed}
    for symbol, timeframe in cfg.pairs(symbols, timeframes):
        series = _series(dataset, symbol, timeframe, begin, finish, cfg)
        runs = _replay_series(dataset, series, begin, finish, parsed, cfg)
        bpy = cfg.spec(timeframe).bars_per_year
        models[f"{symbol}-{timeframe}"] = {name: _scores(series, run, begin, finish, bpy, cfg.stress)
                                           for name, run in runs.items()}
        mine = {name: _scored(series, run, begin, finish) for name, run in runs.items()}
        for name, part in mine.items():
            scored[name].append(part)
            versus = versus_static([part], [mine["static"]], cfg)
            models[f"{symbol}-{timeframe}"][name].update({"vs_static": versus, "verdict": verdict(versus)})
        log.info("replayed %s %s: %s", symbol, timeframe,
                 {n: round(r["accuracy"], 3) for n, r in models[f"{symbol}-{timeframe}"].items()})
    summary = summarize(models, list(parsed))
    for name in parsed:
        summary[name]["vs_static"] = versus_static(scored[name], scored["static"], cfg)
        summary[name]["verdict"] = "the reference" if name == "static" else verdict(summary[name]["vs_static"])
    report = {"data_version": record["md5"], "start": start.isoformat(), "end": end.isoformat(),
              "policies": list(parsed), "models": models, "summary": summary,
              "seconds": round(time.perf_counter() - started, 1)}
    _write_and_log(report, cfg)
    return report


def skip_reasons(events: list[dict[str, Any]]) -> dict[str, int]:
    """{why: how many} of the skipped events; reasons alike but for their numbers count together, shown by the
    newest of them ("4 resolved bars ..., need 100" and "9 ..." are one reason, read as the newest says it)."""
    import re

    counts: dict[str, int] = {}
    shown: dict[str, str] = {}
    for event in events:
        if event["decision"] == "skipped":
            key = re.sub(r"\d+(\.\d+)?", "N", str(event["reason"]))
            counts[key] = counts.get(key, 0) + 1
            shown[key] = str(event["reason"])
    return {(shown[k] if counts[k] == 1 else f"{shown[k]} (the newest of them)"): n
            for k, n in sorted(counts.items(), key=lambda kv: -kv[1])}


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
        reasons: dict[str, int] = {}
        for r in results:
            for why, n in (r.get("skipped_because") or {}).items():
                reasons[why] = reasons.get(why, 0) + n
        ics = [r["ic"] for r in results if np.isfinite(r["ic"])]
        out[name] = {"accuracy": accuracy, "ic": float(np.mean(ics)) if ics else float("nan"),
                     "forecasts": forecasts, **{k: sum(r.get(k, 0) for r in results) for k in
                                                ("retrains", "refreshes", "refreshes_acted", "emergencies",
                                                 "promotions")},
                     "skipped_because": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
                     "compute_s": round(sum(r["compute_s"] for r in results), 1),
                     "months": {m: sum(a * n for a, n in v) / max(sum(n for _, n in v), 1) for m, v in sorted(months.items())}}
    static = out["static"]["accuracy"]
    for value in out.values():
        value["vs_static_points"] = round((value["accuracy"] - static) * 100, 2)
    return out


def table(report: dict[str, Any]) -> str:
    """The comparison, one line per policy: accuracy and IC, their difference with the static policy and its
    interval, what the policy did, and the verdict."""
    some: dict[str, Any] = next(iter(report["summary"].values()), {})
    level = some.get("vs_static", {}).get("confidence", 0.9)
    lines = [f"replay {report['start']} .. {report['end']} on data version {report['data_version'][:12]} "
             f"({len(report['models'])} model(s), {report['seconds']} s); differences with static on the same forecasts, "
             f"{level:.0%} block-bootstrap intervals",
             f"{'policy':<26} {'accuracy':>8} {'vs static (interval)':>26} {'IC':>6} {'IC vs static (interval)':>27} "
             f"{'retrains':>8} {'refreshed':>9} {'emergency':>9} {'promoted':>8} {'compute s':>9}  verdict"]
    for name, s in report["summary"].items():
        v = s["vs_static"]
        acc = (f"{_signed(v['accuracy_diff'], 100, 1)}p [{_signed(v['accuracy_ci'][0], 100, 1)}, "
               f"{_signed(v['accuracy_ci'][1], 100, 1)}]")
        ic = f"{_signed(v['ic_diff'], 1, 3)} [{_signed(v['ic_ci'][0], 1, 3)}, {_signed(v['ic_ci'][1], 1, 3)}]"
        refreshed = f"{s.get('refreshes_acted', s['refreshes'])}/{s['refreshes']}"
        lines.append(f"{name:<26} {_plain(s['accuracy'], 3):>8} {acc:>26} {_plain(s['ic'], 3):>6} {ic:>27} "
                     f"{s['retrains']:8d} {refreshed:>9} {s['emergencies']:9d} {s['promotions']:8d} "
                     f"{s['compute_s']:9.1f}  {s['verdict']}")
    for name, s in report["summary"].items():
        if s.get("skipped_because"):
            lines.append(f"  {name}: refreshes skipped " + "; ".join(
                f"{n} x {why}" for why, n in s["skipped_because"].items()))
    for key, model in report["models"].items():
        serving = "; ".join(f"{name}: {m['serving_at_end']}" for name, m in model.items())
        lines.append(f"  {key} serving at the end: {serving}")
        for name, m in model.items():
            if name != "static":
                v = m["vs_static"]
                lines.append(f"  {key} {name}: {v['accuracy_diff'] * 100:+.1f}p [{v['accuracy_ci'][0] * 100:+.1f}, "
                             f"{v['accuracy_ci'][1] * 100:+.1f}] vs static, {m['verdict']}")
    lines += stress_lines(report)
    return "\n".join(lines)


def stress_lines(report: dict[str, Any]) -> list[str]:
    """Per model and policy: its calls on each named stress window the replay covers, and its long/short book over
    resampled paths (`model.stress`)."""
    from market_mlops.model.stress import describe_bootstrap

    lines = []
    for key, model in report["models"].items():
        for name, m in model.items():
            if "bootstrap" not in m:
                continue
            for row in m.get("stress") or []:
                lines.append(f"  {key} {name} stress {row['window']} ({row['from']} .. {row['to']}, {row['forecasts']} "
                             f"forecasts): accuracy {row['accuracy']:.3f}, log-loss skill {row['log_loss_skill']:+.4f} "
                             f"nats over climatology, IC {_plain(row['ic'], 3)}, long/short "
                             f"{row['long_short_return']:+.1%} (Sharpe {row['long_short_sharpe']:+.2f}, max drawdown "
                             f"{row['long_short_max_drawdown']:.1%})")
            if not m.get("stress"):
                lines.append(f"  {key} {name} stress: no named window in {report['start']} .. {report['end']}")
            lines.append(f"  {key} {name} resampled book: {describe_bootstrap(m['bootstrap'])}")
    return lines


def _plain(value: float, digits: int) -> str:
    """A figure, or "n/a" where there is none (no resolved forecast, no IC on constant calls)."""
    return f"{value:.{digits}f}" if value is not None and np.isfinite(value) else "n/a"


def _signed(value: float, scale: float, digits: int) -> str:
    return f"{value * scale:+.{digits}f}" if value is not None and np.isfinite(value) else "n/a"


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
