"""`make bench`, the learning loop: how often the accuracy bands fire when nothing drifted, how soon they fire on a
planted shift, what the final refit costs, and how balanced the default labels are.

The no-drift checks use the default configuration (`Drift()`): each check reads the last `accuracy_outcomes` x
horizon resolved forecasts and is held to the long-run accuracy of whatever made them. Two null markets: a random walk
called by a fixed momentum rule, and the suite's own generator (no shift) called by an ensemble the suite trained,
scored out of sample after its cutoff, held to its out-of-sample reference as the drift check holds a champion.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np
import pandas as pd

from market_mlops.config import Drift, LabelSpec


def momentum_market(phi_before: float, phi_after: float, shift_at: int, n: int, seed: int,
                    horizon: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Closes of an AR(1) return process (`phi_before`, then `phi_after` from bar `shift_at`; Student-t shocks),
    labelled with the default volatility band over `horizon` bars, and a fixed momentum rule's calls: the direction of
    the last bar's return against 0.43 of its trailing standard deviation. Returns (correct, usable) per bar."""
    from scipy.signal import lfilter

    from market_mlops.model.labels import direction_labels

    rng = np.random.default_rng(seed)
    shocks = rng.standard_t(5, n) * 0.01
    returns = np.concatenate([lfilter([1.0], [1.0, -phi_before], shocks[:shift_at]),
                              lfilter([1.0], [1.0, -phi_after], shocks[shift_at:])])
    y = direction_labels(pd.Series(100 * np.exp(np.cumsum(returns))), horizon, LabelSpec()).to_numpy()
    band = 0.43 * pd.Series(returns).rolling(120).std().to_numpy()
    calls = np.where(returns > band, 2.0, np.where(returns < -band, 0.0, 1.0))
    return calls == y, np.isfinite(y) & np.isfinite(band)


def band_rates(correct: np.ndarray, reference: float, horizon: int, cfg: Drift, step: int) -> tuple[dict[str, float], int]:
    """Share of checks in each band, one check every `step` forecasts over the whole series; and the checks made."""
    from market_mlops.monitoring.bands import accuracy_band

    size = cfg.accuracy_outcomes * horizon
    starts = np.arange(0, len(correct) - size, step)
    bands = [accuracy_band(float(correct[s:s + size].mean()), reference, size, horizon, cfg).band for s in starts]
    return {b: bands.count(b) / max(len(bands), 1) for b in ("monitor", "drift", "emergency")}, len(bands)


def detection_delay(correct: np.ndarray, usable: np.ndarray, shift: int, horizon: int, cfg: Drift) -> int | None:
    """Sessions (bars) from the shift to the first emergency of a check after every bar, or None."""
    from market_mlops.monitoring.bands import accuracy_band

    ok = np.flatnonzero(usable)
    reference = float(correct[ok[ok < shift]].mean())
    size = cfg.accuracy_outcomes * horizon
    for end in range(shift, len(correct)):
        rows = ok[ok < end - horizon][-size:]
        if accuracy_band(float(correct[rows].mean()), reference, len(rows), horizon, cfg).band == "emergency":
            return end - shift
    return None


def _trained_null(cfg: Drift) -> tuple[dict[str, float], int, float]:
    """The generator's hourly bars without a shift, an ensemble trained on the first two years with the default
    training settings, its calls on the rest (out of sample) held to its pooled out-of-sample reference."""
    from market_mlops.config import Training, get_config
    from market_mlops.data.synthetic import GeneratorSpec, generate_bars
    from market_mlops.model.features import build_features, feature_columns
    from market_mlops.model.labels import labels_and_usable_rows
    from market_mlops.model.training import reference_accuracy, train_ensemble

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
    from market_mlops.model.ensemble import blend
    from market_mlops.model.ensemble_model import booster_proba

    later = X.iloc[cut + spec.horizon:][trained.feature_names].to_numpy(dtype=np.float32)
    proba = blend([booster_proba(trained.models[m], later) for m in ("rf", "xgb", "lgbm")], trained.weights)
    correct = proba.argmax(axis=1) == labels[cut + spec.horizon:]
    rates, checks = band_rates(correct, reference, spec.horizon, cfg, step=spec.horizon * 4)
    return rates, checks, reference


def band_calibration() -> list[dict[str, Any]]:
    from market_mlops.dev.bench.run import _row

    cfg = Drift()
    rows = []
    correct, usable = momentum_market(0.0, 0.0, 0, 80_000, seed=11)
    walk = correct[usable]
    rates, checks = band_rates(walk, float(walk.mean()), 5, cfg, step=150)
    note = f"{checks} checks of {cfg.accuracy_outcomes} outcomes (5-bar labels) at {cfg.band_confidence:.0%}"
    rows += [_row("false alarms, random walk: emergency", rates["emergency"] * 100, "% checks", "<= 1",
                  rates["emergency"] <= 0.01, note),
             _row("false alarms, random walk: drift", rates["drift"] * 100, "% checks", "<= 5", rates["drift"] <= 0.05),
             _row("false alarms, random walk: monitor", rates["monitor"] * 100, "% checks", "", None)]
    rates, checks, reference = _trained_null(cfg)
    note = f"{checks} checks of a trained ensemble, out of sample, held to its reference {reference:.3f}"
    rows += [_row("false alarms, generated h1, no shift: emergency", rates["emergency"] * 100, "% checks", "<= 1",
                  rates["emergency"] <= 0.01, note),
             _row("false alarms, generated h1, no shift: drift", rates["drift"] * 100, "% checks", "<= 5",
                  rates["drift"] <= 0.05),
             _row("false alarms, generated h1, no shift: monitor", rates["monitor"] * 100, "% checks", "", None)]
    delays = [detection_delay(*momentum_market(0.8, -0.8, 5_000, 6_000, seed), 5_000, 5, cfg) for seed in range(3, 8)]
    found = [d for d in delays if d is not None]
    rows.append(_row("emergency detection delay, planted shift (median)", float(np.median(found)) if found else float("nan"),
                     "sessions", "", None, f"momentum turns to mean reversion (accuracy ~0.55 -> ~0.25), 5 seeds: "
                     f"{delays}; a window is {cfg.accuracy_outcomes * 5} sessions"))
    return rows


def label_balance_and_refit_cost() -> list[dict[str, Any]]:
    """Class shares of the default labels on generated d1 and h1 bars, and what the final refit adds to a fit."""
    from market_mlops.config import Training, get_config
    from market_mlops.data.synthetic import GeneratorSpec, generate_bars
    from market_mlops.dev.bench.run import _row
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
        rows.append(_row(f"label classes {tf}: smallest share", min(shares.values()) * 100, "%", ">= 20",
                         min(shares.values()) >= 0.2, ", ".join(f"{k} {v:.0%}" for k, v in shares.items())))
        if tf == "d1":
            X = feats.loc[ok, cols].reset_index(drop=True)
            seconds: dict[str, float] = {}
            for mode in ("none", "full", "none", "full"):  # alternating: machine noise hits both alike
                started = time.perf_counter()
                train_ensemble(X, labels, Training(refit=mode), spec.horizon)
                seconds[mode] = min(seconds.get(mode, float("inf")), time.perf_counter() - started)
            rows.append(_row("final refit: d1 model fit with refit / without", seconds["full"] / seconds["none"], "x",
                             "", None, f"{seconds['none']:.2f} s -> {seconds['full']:.2f} s on {len(labels)} rows "
                             "(best of 2 each)"))
    return rows
