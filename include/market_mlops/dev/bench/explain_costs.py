"""What the audit and stress reports cost (issue 48): a champion's attributions at a drift check, a version's at its
retrain, and the resampled-path report of a model's book, each timed on one trained ensemble of generated d1 bars
with the default training settings."""

from __future__ import annotations

import datetime as dt
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

from market_mlops.dev.bench.figures import figure_row


def _best(repeats: int, work: Any) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def explain_and_stress_costs() -> list[dict]:
    from market_mlops.config import Stress, Training, get_config
    from market_mlops.data.synthetic import GeneratorSpec, generate_bars
    from market_mlops.model.ensemble import blend
    from market_mlops.model.ensemble_model import booster_proba
    from market_mlops.model.explain import ensemble_contributions, mean_abs_contributions, top_drivers
    from market_mlops.model.features import build_features, feature_columns
    from market_mlops.model.labels import labels_and_usable_rows
    from market_mlops.model.stress import book_returns, bootstrap_book
    from market_mlops.model.training import train_ensemble

    spec = get_config().spec("d1") if "d1" in get_config().timeframes else None
    bars = generate_bars(GeneratorSpec(seed=3, benchmark=None), ["AAA"], "d1", dt.date(2018, 1, 2), dt.date(2025, 6, 30))
    feats = build_features(bars.reset_index(drop=True), 252, None)
    columns = feature_columns(feats)
    labels = spec.labels if spec is not None else None
    y, ok = labels_and_usable_rows(feats, bars["close"].reset_index(drop=True), columns, 5, labels)  # type: ignore[arg-type]
    X = feats.loc[ok, columns].reset_index(drop=True)
    trained = train_ensemble(X, y[ok].to_numpy().astype(int), Training(), 5)
    names = trained.feature_names
    order = list(trained.models)
    base = SimpleNamespace(meta={"order": order, "weights": [float(w) for w in trained.weights]}, **trained.models)
    holdout = X.iloc[trained.holdout_index][names].to_numpy(dtype=np.float32)

    def one_check() -> None:  # a drift check explains the session's new forecast (a handful after a gap)
        contributions = ensemble_contributions(base, holdout[-1:])
        top_drivers(contributions[0, 1], names)

    def at_retrain() -> None:  # the version's mean |contribution| over its holdout
        called = blend([booster_proba(trained.models[m], holdout) for m in order],
                       np.asarray(trained.weights)).argmax(axis=1)
        mean_abs_contributions(ensemble_contributions(base, holdout), called, names)

    per_check = _best(5, one_check)
    per_retrain = _best(3, at_retrain)
    rng = np.random.default_rng(1)
    pnl = book_returns(trained.holdout_proba, rng.normal(0, 0.01, len(trained.holdout_index)))
    paths = Stress().bootstrap_paths
    cold = _best(1, lambda: bootstrap_book(pnl, 252, paths))
    warm = _best(3, lambda: bootstrap_book(pnl, 252, paths))
    return [
        figure_row("attributions per champion at a drift check", per_check, "s", "<= 0.02", per_check <= 0.02,
                   f"one forecast, 3 boosters, {len(names)} features (a check explains each new forecast once)"),
        figure_row("attributions per model at retrain", per_retrain, "s", "", None,
                   f"mean |contribution| over its {len(holdout)} holdout rows"),
        figure_row(f"resampled-path report per model ({paths} paths)", warm, "s", "<= 1", warm <= 1,
                   f"{len(pnl)} bars, stationary bootstrap (arch); the first in a process {cold:.2f} s with arch's import"),
    ]
