"""`make bench`, the learning loop: how often the accuracy bands fire when nothing drifted, how soon they fire on a
planted drop, what the final refit costs, and how balanced the default labels are.

The bands are `monitoring.detector`'s with the default configuration (`Drift()`), read once a session on every call
the champion resolved since it began serving, held to a reference measured out of sample before it. Two null
markets: random walks, served by a model with no skill (a fixed momentum rule) or a climatology baseline, at each
default d1 horizon; and the suite's own generator (no shift) served by an ensemble the suite trained, scored out of
sample after its cutoff, held to its out-of-sample reference as the drift check holds a champion.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from market_mlops.config import Drift, LabelSpec
from market_mlops.dev.bench.figures import figure_row

ORDER = {None: -1, "normal": 0, "monitor": 1, "drift": 2, "emergency": 3}
HORIZONS = (1, 5, 20)  # the default d1 horizons
REFERENCE_ROWS = 500  # out-of-sample rows a simulated reference is measured on (a retrain's holdout and folds)
CHECKS_A_YEAR = 252
GOALS = {"drift": 5.0, "emergency": 0.1}  # % of no-drift checks at or above the band
DELAY_GOALS = {(1, 10): 40, (1, 20): 20, (5, 10): 150, (5, 20): 80}  # (horizon, drop points): sessions


def random_walk_calls(n: int, seed: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """A random walk (Student-t returns), labelled with the default volatility band over `horizon` bars, and the calls
    of a fixed momentum rule (the last return against 0.43 of its trailing standard deviation): no skill to find.
    Returns (labels, calls) on the usable bars, codes 0..2."""
    from market_mlops.model.labels import direction_labels

    rng = np.random.default_rng(seed)
    returns = rng.standard_t(5, n) * 0.01
    y = direction_labels(pd.Series(100 * np.exp(np.cumsum(returns))), horizon, LabelSpec()).to_numpy()
    band = 0.43 * pd.Series(returns).rolling(120).std().to_numpy()
    calls = np.where(returns > band, 2, np.where(returns < -band, 0, 1))
    ok = np.isfinite(y) & np.isfinite(band)
    return y[ok].astype(int), calls[ok]


@dataclass
class DetectorRecord:
    """What the bands did on simulated champion-years, as checks read them live (`band_path`: `detect` on the calls
    resolved by each check): the no-drift checks at or above each band among the judged ones (not "too few
    outcomes"), the checks too thin to judge, the champion-years with a band, and the sessions from a planted drop
    to its band."""

    above: dict[str, int] = field(default_factory=lambda: {"drift": 0, "emergency": 0})
    years: dict[str, int] = field(default_factory=lambda: {"drift": 0, "emergency": 0})
    delays: dict[int, list[float]] = field(default_factory=lambda: {10: [], 20: []})
    judged: int = 0
    checks: int = 0
    champions: int = 0

    def share(self, band: str) -> float:
        """% of judged checks at or above `band`."""
        return self.above[band] / max(self.judged, 1) * 100

    def unjudged(self) -> float:
        return (1 - self.judged / max(self.checks, 1)) * 100

    def per_year(self, band: str) -> float:
        return self.years[band] / max(self.champions, 1) * 100

    def delay(self, drop: int) -> float:
        return float(np.median(self.delays[drop]))

    def found(self, drop: int) -> float:
        return float(np.mean(np.isfinite(self.delays[drop]))) * 100


def simulate_detector(kind: str, horizon: int, seeds: range, cfg: Drift, walk_bars: int = 30_000) -> DetectorRecord:
    """Champion-years on random walks at `horizon` (d1: a check a session, one call each): a champion `kind` "model"
    (the momentum rule) or "baseline" (climatology: the majority class of the 500 rows before its reference's, as a
    baseline's classes are counted on its training rows and its reference measured on its holdout), held to its
    accuracy on the `REFERENCE_ROWS` rows before its year; then the same start with a drop of 10 and of 20 points
    planted 120 sessions in (right calls turned wrong at random). Each check reads the calls resolved by then, as the
    drift check does; a delay counts from the drop to the check that first reads drift (a 10-point drop) or
    emergency (20), the label's horizon included."""
    from market_mlops.monitoring.detector import band_path

    record = DetectorRecord()
    for seed in seeds:
        y, calls = random_walk_calls(walk_bars, seed, horizon)
        for start in range(2 * REFERENCE_ROWS, len(y) - 400, 400):
            before = slice(start - REFERENCE_ROWS, start)
            learned = slice(start - 2 * REFERENCE_ROWS, start - REFERENCE_ROWS)
            call = np.bincount(y[learned], minlength=3).argmax() if kind == "baseline" else calls
            hits = y == call
            reference = float(hits[before].mean())
            checks = band_path(hits[start:start + CHECKS_A_YEAR], reference, REFERENCE_ROWS, horizon, 1, cfg)
            judged = [b for b in checks if b is not None]
            record.checks += len(checks)
            record.judged += len(judged)
            for band in record.above:
                count = sum(ORDER[b] >= ORDER[band] for b in judged)
                record.above[band] += count
                record.years[band] += count > 0
            record.champions += 1
            rng = np.random.default_rng(start * 1_000 + seed)
            for drop, band in ((10, "drift"), (20, "emergency")):
                planted = hits[start:start + 400].copy()
                turned = rng.random(len(planted)) < drop / 100 / max(reference, 1e-9)
                planted[120:] &= ~turned[120:]
                path = band_path(planted, reference, REFERENCE_ROWS, horizon, 1, cfg, reset_on=None,
                                 checks=np.arange(120, len(planted)))
                fired = [i for i in range(120, len(path)) if ORDER[path[i]] >= ORDER[band]]
                record.delays[drop].append(fired[0] + horizon - 120 if fired else float("inf"))
    return record


def detector_calibration() -> list[dict[str, Any]]:
    """The bands' false alarms and delays for model and baseline champions at each default horizon (defaults)."""
    cfg = Drift()
    rows = []
    for horizon in HORIZONS:
        for kind in ("model", "baseline"):
            record = simulate_detector(kind, horizon, range(6), cfg)
            tag = f"d1 h{horizon}, {kind} champion"
            note = (f"{record.champions} champion-years of daily checks on random walks, {record.unjudged():.0f}% "
                    "of checks too few outcomes to judge")
            for band in ("emergency", "drift"):
                share = record.share(band)
                rows.append(figure_row(f"false alarms {tag}: {band}", share, "% judged", f"<= {GOALS[band]:g}",
                                       share <= GOALS[band], f"{record.per_year(band):.1f}% of champion-years; {note}"))
            for drop, band in ((10, "drift"), (20, "emergency")):
                goal = DELAY_GOALS.get((horizon, drop))
                delay = record.delay(drop)
                rows.append(figure_row(
                    f"delay {tag}: -{drop} pts to {band} (median)", delay, "sessions",
                    f"<= {goal}" if goal else "", None if goal is None else delay <= goal,
                    f"found in {record.found(drop):.0f}% within 280 sessions"))
    rates, checks, reference = _trained_null(cfg)
    note = f"{checks} daily checks of a trained ensemble on generated h1 bars, out of sample, reference {reference:.3f}"
    rows += [figure_row("false alarms, generated h1, trained model: emergency", rates["emergency"] * 100, "% checks",
                        "<= 0.1", rates["emergency"] <= 0.001, note),
             figure_row("false alarms, generated h1, trained model: drift", rates["drift"] * 100, "% checks", "<= 5",
                        rates["drift"] <= 0.05)]
    return rows


def _trained_null(cfg: Drift) -> tuple[dict[str, float], int, float]:
    """The generator's hourly bars without a shift, an ensemble trained on the first two years with the default
    training settings, its calls on the rest (out of sample) held to its pooled out-of-sample reference, checked
    once a session (7 bars)."""
    from market_mlops.config import Training, get_config
    from market_mlops.data.synthetic import GeneratorSpec, generate_bars
    from market_mlops.model.ensemble import blend
    from market_mlops.model.ensemble_model import booster_proba
    from market_mlops.model.features import build_features, feature_columns
    from market_mlops.model.labels import labels_and_usable_rows
    from market_mlops.model.training import reference_accuracy, train_ensemble
    from market_mlops.monitoring.detector import SESSIONS_PER_YEAR, band_path

    spec = get_config().spec("h1")
    bars = generate_bars(GeneratorSpec(seed=21, signal_strength=0.6), ["SPY", "AAA"], "h1", dt.date(2019, 1, 2),
                         dt.date(2025, 9, 30))
    own = bars[bars["symbol"] == "AAA"].reset_index(drop=True)
    feats = build_features(own, spec.bars_per_year, bars[bars["symbol"] == "SPY"])
    cols = feature_columns(feats)
    y, ok = labels_and_usable_rows(feats, own["close"], cols, spec.horizon, spec.labels)
    X, labels = feats.loc[ok, cols].reset_index(drop=True), y[ok].to_numpy().astype(int)
    cut = int(len(labels) * 0.35)
    trained = train_ensemble(X.iloc[:cut], labels[:cut], Training(refit="none"), spec.horizon)
    holdout_accuracy = float((trained.holdout_proba.argmax(axis=1) == labels[:cut][trained.holdout_index]).mean())
    reference = reference_accuracy(trained.oof_accuracy, trained.oof_rows, holdout_accuracy, len(trained.holdout_index))
    later = X.iloc[cut + spec.horizon:][trained.feature_names].to_numpy(dtype=np.float32)
    proba = blend([booster_proba(trained.models[m], later) for m in ("rf", "xgb", "lgbm")], trained.weights)
    correct = proba.argmax(axis=1) == labels[cut + spec.horizon:]
    per_check = max(1, round(spec.bars_per_year / SESSIONS_PER_YEAR))
    at = np.arange(spec.horizon + per_check - 1, len(correct), per_check)  # a check a session
    path = band_path(correct, reference, trained.oof_rows + len(trained.holdout_index), spec.horizon, per_check, cfg,
                     checks=at)
    checks = [path[i] for i in at if path[i] is not None]  # the judged ones
    return ({band: float(np.mean([ORDER[b] >= ORDER[band] for b in checks])) for band in ("drift", "emergency")},
            len(checks), reference)


def label_balance_and_refit_cost() -> list[dict[str, Any]]:
    """Class shares of the default labels on generated d1 and h1 bars, and what the final refit adds to a fit."""
    from market_mlops.config import Training, get_config
    from market_mlops.data.synthetic import GeneratorSpec, generate_bars
    from market_mlops.model.features import build_features, feature_columns
    from market_mlops.model.labels import class_shares, labels_and_usable_rows
    from market_mlops.model.training import train_ensemble

    rows = []
    for tf, start in (("d1", dt.date(2018, 1, 2)), ("h1", dt.date(2022, 1, 3))):
        spec = get_config().spec(tf)
        bars = generate_bars(GeneratorSpec(seed=5), ["SPY", "AAA"], tf, start, dt.date(2025, 9, 30))
        own = bars[bars["symbol"] == "AAA"].reset_index(drop=True)
        feats = build_features(own, spec.bars_per_year, bars[bars["symbol"] == "SPY"])
        cols = feature_columns(feats)
        y, ok = labels_and_usable_rows(feats, own["close"], cols, spec.horizon, spec.labels)
        labels = y[ok].to_numpy().astype(int)
        shares = class_shares(labels)
        rows.append(figure_row(f"label classes {tf}: smallest share", min(shares.values()) * 100, "%", ">= 20",
                         min(shares.values()) >= 0.2, ", ".join(f"{k} {v:.0%}" for k, v in shares.items())))
        if tf == "d1":
            X = feats.loc[ok, cols].reset_index(drop=True)
            seconds: dict[str, float] = {}
            for mode in ("none", "full", "none", "full"):  # alternating: machine noise hits both alike
                started = time.perf_counter()
                train_ensemble(X, labels, Training(refit=mode), spec.horizon)
                seconds[mode] = min(seconds.get(mode, float("inf")), time.perf_counter() - started)
            rows.append(figure_row("final refit: d1 model fit with refit / without", seconds["full"] / seconds["none"], "x",
                             "", None, f"{seconds['none']:.2f} s -> {seconds['full']:.2f} s on {len(labels)} rows "
                             "(best of 2 each)"))
    return rows


def _skilled_probabilities(y: np.ndarray, skill: float, rng: np.random.Generator) -> np.ndarray:
    """A forecaster of labels `y` that knows them a little: the class mix pulled toward the truth by `skill`, with
    noise (skill 0: climatology plus noise, no knowledge)."""
    shares = np.bincount(y, minlength=3) / len(y)
    truth = np.eye(3)[y]
    noisy = rng.dirichlet(np.full(3, 20.0), len(y))
    p = (1 - skill) * (0.7 * shares + 0.3 * noisy) + skill * truth
    return p / p.sum(axis=1, keepdims=True)


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1))))


def consensus_versus_anchor(seeds: range = range(8), calls: int = 750) -> list[dict[str, Any]]:
    """The consensus against its anchor, on random walks with members that know their own label a little: a d1
    20-session anchor, another timeframe's model of the same 20-session event (independent noise), and d1 5- and
    1-session members, each with log-loss skill over its baseline on its own event, pooled as
    `monitoring.consensus.combine` pools them and scored on the anchor's event, as the drift check resolves it.
    Printed: the consensus's log-loss skill over its anchor, and what pooling every member would have given; how
    often `consensus_edge` proves an edge (the rule that decides whether a call is shown) when the consensus is
    better, and when it is in truth no better (goal: at most its level, 1 - band_confidence)."""
    from market_mlops.config import get_config
    from market_mlops.model.labels import direction_labels
    from market_mlops.monitoring.consensus import Member, combine, consensus_edge

    alpha = 1 - Drift().band_confidence
    differences: dict[str, list[float]] = {"the consensus": [], "every member pooled": []}
    shown = {"better": [0, 0], "worse": [0, 0]}  # [shown, walks]
    spec = get_config().spec("d1")
    cast = (("d1", 20, 0.10, 0.010), ("h4", 20, 0.08, 0.008), ("d1", 5, 0.15, 0.02), ("d1", 1, 0.20, 0.03))
    for seed in seeds:
        rng = np.random.default_rng(seed)
        close = pd.Series(100 * np.exp(np.cumsum(rng.standard_t(5, calls + 400) * 0.01)))
        labels = {h: direction_labels(close, h, spec.labels).to_numpy() for h in (20, 5, 1)}
        ok = np.all([np.isfinite(v) for v in labels.values()], axis=0)
        y = {h: v[ok].astype(int)[-calls:] for h, v in labels.items()}
        proba = [_skilled_probabilities(y[h], knows, rng) for _, h, knows, _ in cast]
        members = [Member(f"{tf}-h{h}", "1", tf, h, 1440 * h, "", (1 / 3, 1 / 3, 1 / 3), "NEUTRAL", 0.4, "reference",
                          "model", skill, "holdout") for tf, h, _, skill in cast]
        weights = np.array(list(combine(members).weights.values()))
        pooled = sum(w * p for w, p in zip(weights, proba, strict=True))
        every = np.array([m.skill or 0.0 for m in members])
        everything = sum(w * p for w, p in zip(every / every.sum(), proba, strict=True))
        target = y[20]
        anchor = _log_loss(proba[0], target)
        differences["the consensus"].append(anchor - _log_loss(pooled, target))
        differences["every member pooled"].append(anchor - _log_loss(everything, target))
        for p, difference in ((pooled, differences["the consensus"][-1]),
                              (everything, differences["every member pooled"][-1])):
            resolved = pd.DataFrame({"realized": np.array(["BEARISH", "NEUTRAL", "BULLISH"])[target],
                                     "proba": list(p), "anchor_proba": list(proba[0])})
            edge = consensus_edge(resolved, 20, alpha)
            case = shown["better" if difference > 0 else "worse"]
            case[0] += bool(edge and edge["proven"])
            case[1] += 1
    rows = [figure_row(f"consensus vs its anchor: {name}, log-loss skill on the 20-session event",
                       float(np.mean(v)), "nats", "", None,
                       f"{len(seeds)} random walks of {calls} calls; positive: better than the anchor alone")
            for name, v in differences.items()]
    rate = shown["worse"][0] / max(shown["worse"][1], 1)
    rows.append(figure_row("consensus shown as a call while no better than its anchor", rate * 100, "% of such",
                           f"<= {alpha * 100:g}", rate <= alpha, f"{shown['worse'][1]} such cases; when better, shown "
                           f"in {shown['better'][0]} of {shown['better'][1]} ({len(seeds)} walks x 2 poolings)"))
    return rows
