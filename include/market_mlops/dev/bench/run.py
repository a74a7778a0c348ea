"""`make bench`: measured figures next to their targets, printed as a table and written to bench-results.json.

Nothing here asserts a time; machines are shared and noisy. Workloads (all on generated data, 2-core machine):
- parse time of every DAG file (fresh interpreter each), target <= 0.1 s;
- feature values per second over W1's bars, target >= 10 M/s;
- W1: 15 symbols x d1 x 15 years, full features, 5 walk-forward folds, RF + XGBoost + LightGBM: total, per model,
  peak memory, target <= 180 s (skip with --skip-w1);
- ingestion of one new session for 15 symbols on an empty history vs on 15 years of d1 plus h4/h1/m15:
  time and bytes pushed, target: with history <= 2x empty;
- drift compute for 60 series (15 symbols x 4 timeframes; one model per timeframe scores all its symbols),
  MLflow report logging and Airflow excluded, target <= 10 s;
- weight refresh per model;
- the end-to-end demo wall time (with --demo), target <= 300 s;
- the gate: false promotions of no-skill challengers per retrain test at h1, h5, h20 and per champion-year
  (`promotion`), and the served champions' holdout log-loss against climatology (the retrain DAG's fleet).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from market_mlops.config import REPO_ROOT, LabelSpec, Training
from market_mlops.contracts import TrainingData
from market_mlops.dev.bench.figures import figure_row

D1_BARS_PER_YEAR = 252  # W1 is daily bars
D1_LABELS = LabelSpec()  # the default volatility band

SYMBOLS_15 = ["SPY", "AAPL", "MSFT", "AMZN", "GOOG", "META", "NVDA", "JPM", "XOM", "JNJ", "PG", "XLF", "XLE", "QQQ", "IWM"]
W1_START, W1_END = dt.date(2010, 11, 1), dt.date(2025, 10, 31)  # ~3,774 sessions
W1_TRAINING = Training(folds=5, history_years=15, fits_per_worker=1)  # one model at a time: every core for its fits



def parse_times() -> list[dict]:
    """Each DAG file's own parse cost, the way the dag-processor pays it.

    The dag-processor parses a file in a child that already holds Airflow's parsing and serialization modules
    (`airflow.dag_processing.processor`), so those are imported first and the figure is what the file adds: its
    imports and the DAG construction. A cold interpreter (Airflow's lazy `airflow.sdk` only) is printed beside it.
    """
    probe = ("import importlib.util, sys, time; t=time.perf_counter(); s=importlib.util.spec_from_file_location('d', sys.argv[1]); "
             "m=importlib.util.module_from_spec(s); s.loader.exec_module(m); print(time.perf_counter()-t)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "plugins"), str(REPO_ROOT / "include")])}

    def best_of(tries: int, preload: str, path: Path) -> float:
        return min(float(subprocess.run([sys.executable, "-c", f"{preload}; {probe}", str(path)], capture_output=True,
                                        text=True, env=env, check=True).stdout.strip().splitlines()[-1]) for _ in range(tries))

    rows = []
    for path in sorted((REPO_ROOT / "dags").glob("*.py")):
        warm = best_of(3, "import airflow.dag_processing.processor", path)
        cold = best_of(1, "import airflow.sdk", path)
        rows.append(figure_row(f"parse {path.name}", warm, "s", "<= 0.1", warm <= 0.1,
                         f"best of 3 in a dag-processor child; cold interpreter {cold:.2f} s"))
    return rows


def _w1_bars() -> pd.DataFrame:
    from market_mlops.data.synthetic import GeneratorSpec, generate_bars

    return generate_bars(GeneratorSpec(seed=7, origin=dt.date(2010, 1, 4), benchmark="SPY"), SYMBOLS_15, "d1", W1_START, W1_END)


def feature_speed(bars: pd.DataFrame) -> list[dict]:
    """Feature values per second from a symbol's bars to its feature frame (the symbols split beforehand, as the
    dataset reads them), best of 5 passes; the seed-style pandas features of the reference beside it."""
    from market_mlops.dev.bench.reference_pipeline import reference_features
    from market_mlops.model.features import build_features, feature_columns

    bench = bars[bars["symbol"] == "SPY"].reset_index(drop=True)
    series = [bars[bars["symbol"] == s].reset_index(drop=True) for s in SYMBOLS_15]

    def rate(build: Callable[[pd.DataFrame], pd.DataFrame], passes: int) -> tuple[float, int]:
        best, values = float("inf"), 0
        for _ in range(passes):
            started = time.perf_counter()
            values = sum(len(f) * (f.shape[1] - 1) for f in (build(own) for own in series))
            best = min(best, time.perf_counter() - started)
        return values / best, values

    suite, values = rate(lambda own: build_features(own, D1_BARS_PER_YEAR, bench), 5)
    seed, _ = rate(lambda own: reference_features(own, bench), 2)
    width = len(feature_columns(build_features(series[0], D1_BARS_PER_YEAR, bench)))
    return [figure_row("features", suite / 1e6, "M values/s", ">= 40", suite >= 40e6,
                 f"{values:,} values ({width} features x 15 symbols); the reference's pandas indicators "
                 f"{seed / 1e6:.1f} M/s")]


def w1(bars: pd.DataFrame) -> list[dict]:
    from market_mlops.model.evaluation import evaluate_holdout
    from market_mlops.model.features import build_features, feature_columns
    from market_mlops.model.labels import labels_and_usable_rows
    from market_mlops.model.training import fit_threads, train_ensemble

    cfg = W1_TRAINING
    bench = bars[bars["symbol"] == "SPY"]
    started = time.perf_counter()
    per_model = {"rf": 0.0, "xgb": 0.0, "lgbm": 0.0, "selection": 0.0}
    accuracies, baselines, per_symbol = [], [], []
    losses: list[tuple[float, float]] = []
    for symbol in SYMBOLS_15:
        symbol_started = time.perf_counter()
        own = bars[bars["symbol"] == symbol].reset_index(drop=True)
        feats = build_features(own, D1_BARS_PER_YEAR, bench)
        y, ok = labels_and_usable_rows(feats, own["close"], feature_columns(feats), 5, D1_LABELS)
        trained = train_ensemble(feats.loc[ok, feature_columns(feats)].reset_index(drop=True), y[ok].to_numpy().astype(int), cfg, 5)
        per_symbol.append(time.perf_counter() - symbol_started)
        for m, t in trained.timings.items():
            per_model[m] += t
        evaluation = evaluate_holdout(y[ok].to_numpy().astype(int), trained.holdout_proba,
                                      own["close"][ok].to_numpy(dtype=float), trained.holdout_index, trained.train_index, 5)
        accuracies.append(float(evaluation["model_accuracy"]))
        baselines.append(float(evaluation["climatology_accuracy"]))  # the naive baseline, same holdout rows
        losses.append((float(evaluation["model_log_loss"]), float(evaluation["climatology_log_loss"])))
    total = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [figure_row("W1 total", total, "s", "", None, f"15 symbols x {len(bars) // 15} d1 bars, 5 folds, "
                 f"{fit_threads(cfg)} fits at once")]
    rows += [figure_row(f"W1 {m} fit CPU (all symbols, folds + final)", t, "s", "", None) for m, t in per_model.items()]
    rows.append(figure_row("W1 per symbol (median)", float(np.median(per_symbol)), "s", "", None,
                     f"min {min(per_symbol):.2f}, max {max(per_symbol):.2f} (the first pays the booster imports)"))
    rows.append(figure_row("W1 peak memory (process max RSS)", peak_mb, "MB", "", None))
    rows.append(figure_row("W1 mean holdout accuracy", float(np.mean(accuracies)), "", "", None,
                     f"out of sample; climatology's (majority class) {np.mean(baselines):.3f}"))
    model_loss, climatology_loss = np.mean(np.asarray(losses), axis=0)
    rows.append(figure_row("W1 mean holdout log-loss, calibrated", float(model_loss), "nats", "<= climatology",
                     bool(model_loss <= climatology_loss), f"climatology {climatology_loss:.4f}; uniform ln 3 = 1.0986; "
                     f"{sum(m <= c for m, c in losses)} of {len(losses)} symbols at or below climatology"))
    return rows


def feature_selection_effect(bars: pd.DataFrame, symbols: int = 6) -> list[dict]:
    """Feature selection's cost and its effect on the holdout, on the same rows, folds and holdout: no selection, the
    default (importance ranking only) and correlated-feature removal at |rho| 0.95 on top, rotating which goes first
    symbol by symbol so that machine noise hits each alike."""
    from market_mlops.config import FeatureSelectionSpec
    from market_mlops.model.ensemble import log_loss
    from market_mlops.model.features import build_features, feature_columns
    from market_mlops.model.labels import labels_and_usable_rows
    from market_mlops.model.training import train_ensemble

    variants = {"none": FeatureSelectionSpec(max_abs_correlation=1, min_importance=0),
                "default": FeatureSelectionSpec(),
                "corr 0.95": FeatureSelectionSpec(max_abs_correlation=0.95)}
    bench = bars[bars["symbol"] == "SPY"]
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    scores: dict[str, list[tuple[float, float, int]]] = {v: [] for v in variants}
    names = list(variants)
    for i, symbol in enumerate(SYMBOLS_15[1:symbols + 1]):
        own = bars[bars["symbol"] == symbol].reset_index(drop=True)
        feats = build_features(own, D1_BARS_PER_YEAR, bench)
        y, ok = labels_and_usable_rows(feats, own["close"], feature_columns(feats), 5, D1_LABELS)
        X, labels = feats.loc[ok, feature_columns(feats)].reset_index(drop=True), y[ok].to_numpy().astype(int)
        for name in names[i % 3:] + names[:i % 3]:
            started = time.perf_counter()
            trained = train_ensemble(X, labels, W1_TRAINING.model_copy(update={"feature_selection": variants[name]}), 5)
            seconds[name].append(time.perf_counter() - started)
            truth = labels[trained.holdout_index]
            scores[name].append((log_loss(truth, trained.holdout_proba),
                                 float((trained.holdout_proba.argmax(axis=1) == truth).mean()), len(trained.feature_names)))
    rows = []
    for name in names:
        loss, accuracy, kept = np.mean(np.asarray(scores[name]), axis=0)
        rows.append(figure_row(f"feature selection {name}: holdout log-loss", loss, "", "", None,
                         f"accuracy {accuracy:.3f}; {kept:.0f} features kept (mean); per symbol "
                         f"{np.median(seconds[name]):.2f} s (median); {symbols} d1 symbols, W1 settings"))
    return rows


def w1_against_reference(bars: pd.DataFrame, symbols: int) -> list[dict]:
    """The suite and the seed-style reference (`reference_pipeline`) on the same rows, folds and holdout, alternating
    symbol by symbol (and which goes first) so that machine noise hits both alike."""
    from market_mlops.dev.bench import reference_pipeline as reference
    from market_mlops.model.ensemble import log_loss
    from market_mlops.model.features import build_features, feature_columns
    from market_mlops.model.labels import direction_labels
    from market_mlops.model.training import train_ensemble
    from market_mlops.model.walk_forward import walk_forward_splits

    cfg, horizon = W1_TRAINING, 5
    bench = bars[bars["symbol"] == "SPY"]
    times: dict[str, list[float]] = {"suite": [], "reference": []}
    scores: dict[str, list[tuple[float, float]]] = {"suite": [], "reference": [], "majority": []}
    for i, symbol in enumerate(SYMBOLS_15[:symbols]):
        own = bars[bars["symbol"] == symbol].sort_values("ts").reset_index(drop=True)
        feats: dict[str, pd.DataFrame] = {}
        seconds: dict[str, float] = {}
        for side in (("suite", "reference") if i % 2 == 0 else ("reference", "suite")):
            started = time.perf_counter()
            feats[side] = (build_features(own, D1_BARS_PER_YEAR, bench) if side == "suite"
                           else reference.reference_features(own, bench))
            seconds[side] = time.perf_counter() - started
        suite_cols = feature_columns(feats["suite"])
        ref_cols = [c for c in feats["reference"].columns if c != "ts"]
        labels = direction_labels(own["close"], horizon, D1_LABELS)
        usable = (feats["suite"][suite_cols].notna().all(axis=1) & feats["reference"][ref_cols].notna().all(axis=1)
                  & labels.notna()).to_numpy()
        y = labels[usable].to_numpy().astype(int)
        folds, holdout = walk_forward_splits(len(y), cfg.folds, horizon, cfg.embargo_bars, cfg.holdout_fraction,
                                             cfg.min_train_rows)
        proba: dict[str, np.ndarray] = {}
        for side in (("suite", "reference") if i % 2 == 0 else ("reference", "suite")):
            started = time.perf_counter()
            if side == "suite":
                trained = train_ensemble(feats["suite"].loc[usable, suite_cols].reset_index(drop=True), y, cfg, horizon)
                assert np.array_equal(trained.holdout_index, holdout.test)  # the same rows for both
                proba[side] = trained.holdout_proba
            else:
                X = feats["reference"].loc[usable, ref_cols].to_numpy(dtype=np.float32)
                proba[side] = reference.holdout_proba(X, y, folds, holdout, horizon)
            seconds[side] += time.perf_counter() - started
            times[side].append(seconds[side])
        truth = y[holdout.test]
        for side, p in proba.items():
            scores[side].append((float((p.argmax(axis=1) == truth).mean()), log_loss(truth, p)))
        majority = int(np.bincount(y[holdout.train], minlength=3).argmax())
        scores["majority"].append((float((truth == majority).mean()), float("nan")))
        print(f"    {symbol}: suite {seconds['suite']:.2f}s, reference {seconds['reference']:.2f}s", flush=True)
    suite, ref = float(np.median(times["suite"])), float(np.median(times["reference"]))
    mean = {side: np.mean(np.asarray(v), axis=0) for side, v in scores.items()}
    return [
        figure_row("W1 per symbol, suite (median)", suite, "s", "", None, f"{symbols} symbols, alternating with the reference"),
        figure_row("W1 per symbol, seed-style reference (median)", ref, "s", "", None,
             "pandas indicators; RF(200, depth 15) + GB(100) + XGB(1000, lr 0.01) per split; ridge weights"),
        figure_row("W1 reference / suite", ref / suite, "x", ">= 20", ref / suite >= 20),
        figure_row("W1 holdout log-loss, suite vs reference", mean["suite"][1], "", "<= ref", mean["suite"][1] <= mean["reference"][1],
             f"reference {mean['reference'][1]:.4f}; same rows, folds and holdout"),
        figure_row("W1 holdout accuracy, suite", mean["suite"][0], "", "", None,
             f"reference {mean['reference'][0]:.3f}, majority baseline {mean['majority'][0]:.3f}"),
    ]


def ingestion_cost() -> list[dict]:
    """One new session of 15 symbols x 4 timeframes through the ingestion path a user's deployment takes: the
    session's vendor drops in the landing folder (written beforehand, not timed), then fetch, normalise, gate,
    merge, dvc add, push; on an empty history and on 15 years of d1 plus two years of h4/h1/m15."""
    from market_mlops.config import load_config
    from market_mlops.data import calendar
    from market_mlops.data.dataset import merge_bars
    from market_mlops.data.synthetic import GeneratorSpec, generate_bars, spec_from_config
    from market_mlops.data.versioning import commit_and_push
    from market_mlops.dev.vendor_files import write_session_drops
    from market_mlops.tasks import ingestion

    session_day = dt.date(2025, 11, 3)
    s = calendar.session("XNYS", session_day)
    rows = []
    # A first unmeasured pass pays the one-time costs (GX, DVC and S3 imports) that would flatter the ratio.
    for label, history in (("warm-up", False), ("empty history", False), ("15y d1 + h4/h1/m15 history", True)):
        with tempfile.TemporaryDirectory() as home:
            env = {"MLOPS_HOME": home, "MLOPS__UNIVERSE__SYMBOLS": ",".join(SYMBOLS_15),
                   "MLOPS__UNIVERSE__TIMEFRAMES": "d1,h4,h1,m15", "MLOPS__SOURCE__SYNTHETIC__ORIGIN": "2010-01-04",
                   "MLOPS__UNIVERSE__CALENDARS": "{}", "MLOPS__SOURCE__KIND": "landing"}
            cfg = load_config(environ=env)
            write_session_drops(spec_from_config(cfg), SYMBOLS_15, cfg.bar_minutes, session_day, session_day,
                                Path(cfg.landing_uri))
            if history:
                spec = GeneratorSpec(seed=cfg.source.synthetic.seed, origin=dt.date(2010, 1, 4), benchmark="SPY")
                for tf in ("d1", "h4", "h1", "m15"):
                    start = W1_START if tf == "d1" else dt.date(2023, 11, 1)  # intraday: two years
                    merge_bars(cfg.data_root / "dataset", generate_bars(spec, SYMBOLS_15, tf, start, dt.date(2025, 10, 31)))
                commit_and_push(cfg.data_root, cfg.dvc_remote_url)
            remote = Path(cfg.dvc_remote_url)
            before = sum(p.stat().st_size for p in remote.rglob("*") if p.is_file()) if remote.exists() else 0
            started = time.perf_counter()
            fetched = ingestion.fetch_batch(s.interval_start.to_pydatetime(), s.close.to_pydatetime(), cfg=cfg)
            fetch_s = time.perf_counter() - started
            validated = ingestion.validate_batch(fetched, cfg=cfg)
            record = ingestion.version_dataset(validated, cfg=cfg)
            seconds = time.perf_counter() - started
            pushed = sum(p.stat().st_size for p in remote.rglob("*") if p.is_file()) - before
            if label == "warm-up":
                continue
            phases = {"fetch": fetch_s, **validated.get("seconds", {}), **record.get("seconds", {})}
            rows.append(figure_row(f"ingest 1 session, {label}", seconds, "s", "<= 3" if not history else "", seconds <= 3
                             if not history else None,
                             f"{len(fetched['files'])} drops; " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items())
                             + f"; {record['objects_pushed']} objects, {pushed:,} bytes pushed, {record['files']} files tracked"))
    ratio = rows[1]["value"] / rows[0]["value"]
    rows.append(figure_row("ingest with history / empty", ratio, "x", "<= 2", ratio <= 2))
    return rows


def drift_and_refresh() -> list[dict]:
    """One small model per timeframe, registered in a temp MLflow; drift compute for 60 series; refresh per model.

    Long on purpose: one scenario whose setup, timed section and clean-up read in order."""
    from market_mlops.config import load_config
    from market_mlops.data.dataset import merge_bars
    from market_mlops.data.synthetic import GeneratorSpec, generate_bars
    from market_mlops.monitoring.detector import detect
    from market_mlops.monitoring.drift import feature_drift, psi_null_thresholds
    from market_mlops.monitoring.forecasts import resolved_forecasts, with_last_known_label
    from market_mlops.registry import store, versions
    from market_mlops.tasks.refresh import refresh_weights
    from market_mlops.tasks.retrain import retrain_model

    rows = []
    with tempfile.TemporaryDirectory() as home:
        env = {"MLOPS_HOME": home, "MLOPS__UNIVERSE__SYMBOLS": ",".join(SYMBOLS_15),
               "MLOPS__UNIVERSE__TIMEFRAMES": "d1,h4,h1,m15", "MLOPS__TRAINING__RF_ESTIMATORS": "100",
               "MLOPS__TRAINING__BOOST_ROUNDS": "150", "MLOPS__TRAINING__HISTORY_YEARS": "3", "MLOPS__TRAINING__FOLDS": "3"}
        os.environ.update(env)
        cfg = load_config()
        spec = GeneratorSpec(seed=7, origin=dt.date(2018, 1, 2), benchmark="SPY")
        for tf, start in (("d1", dt.date(2020, 1, 2)), ("h4", dt.date(2022, 6, 1)), ("h1", dt.date(2024, 1, 2)), ("m15", dt.date(2025, 1, 2))):
            merge_bars(cfg.data_root / "dataset", generate_bars(spec, SYMBOLS_15, tf, start, dt.date(2025, 11, 14)))
        data: TrainingData = {"md5": "bench", "path": str(cfg.data_root / "dataset"), "gx_result_id": "bench",
                "interval_end": dt.datetime(2025, 10, 1, tzinfo=dt.UTC).isoformat()}
        models = {}
        for tf in ("d1", "h4", "h1", "m15"):
            retrain_model("SPY", tf, data, force_promotion=True, cfg=cfg)
            models[tf] = versions.load_verified(store.model_name("SPY", tf), alias="champion", cfg=cfg)
        reference = {tf: pd.DataFrame(np.random.default_rng(0).normal(size=(2000, len(m.base.features))), columns=m.base.features)
                     for tf, m in models.items()}
        limits = {tf: psi_null_thresholds(ref, cfg.drift.window, cfg.drift.null_quantile) for tf, ref in reference.items()}
        end = dt.datetime(2025, 11, 14, 21, tzinfo=dt.UTC)
        from market_mlops.data.dataset import load_bars
        from market_mlops.model.features import build_features

        start = pd.Timestamp("2025-10-01", tz="UTC")
        all_bars = {tf: load_bars(cfg.data_root / "dataset", tf, until=end, since=start - dt.timedelta(days=cfg.spec(tf).warmup_days))
                    for tf in models}
        # Each series' bars as a drift check reads them (its own load, not timed, like the load above).
        series = {tf: {str(k): v.reset_index(drop=True) for k, v in bars.groupby("symbol")} for tf, bars in all_bars.items()}

        def one_pass() -> tuple[float, int]:
            started = time.perf_counter()
            measured = 0
            for tf, model in models.items():
                bench = series[tf]["SPY"]
                for symbol in SYMBOLS_15:
                    own = series[tf][symbol]
                    feats = with_last_known_label(build_features(own, cfg.spec(tf).bars_per_year, bench), own["close"],
                                                  cfg.spec(tf).horizon, cfg.spec(tf).labels)
                    window = feats[feats["ts"] >= start].dropna(subset=model.base.features)
                    if window.empty:
                        continue
                    measured += 1
                    proba = model.predict_proba(window)
                    forecasts = pd.DataFrame({"ts": window["ts"].to_numpy(), "model_version": model.version,
                                              "predicted": np.array(["BEARISH", "NEUTRAL", "BULLISH"])[proba.argmax(1)]})
                    resolved = resolved_forecasts(forecasts, own, cfg.spec(tf).horizon, cfg.spec(tf).labels)
                    detect(resolved["correct"].to_numpy(dtype=bool), 0.5, 500, cfg.spec(tf).horizon, 1, cfg.drift)
                    feature_drift(reference[tf], window[model.base.features].tail(cfg.drift.window), cfg.drift, limits[tf])
            return time.perf_counter() - started, measured

        seconds, measured = min(one_pass() for _ in range(3))  # best of 3 passes: the least disturbed by other jobs
        rows.append(figure_row(f"drift compute, {measured} of 60 series", seconds, "s", "<= 2", seconds <= 2 and measured == 60,
                         "score + resolve + band + PSI/KS per series; MLflow logging, Airflow and the PSI limits (made at training) excluded"))
        started = time.perf_counter()
        for tf in ("d1", "h1"):
            refresh_weights("SPY", tf, dt.datetime(2025, 11, 10, 6, tzinfo=dt.UTC), cfg=cfg)
        per_model = (time.perf_counter() - started) / 2
        rows.append(figure_row("weight refresh per model", per_model, "s", "", None, "incl. MLflow logging and the gate"))
        for key in env:
            os.environ.pop(key, None)
    return rows


def demo_time() -> list[dict]:
    with tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "market_mlops.dev.demo"], env={**os.environ, "MLOPS_HOME": home},
                             capture_output=True, text=True)
        seconds = time.perf_counter() - started
    return [figure_row("end-to-end demo", seconds, "s", "<= 120", seconds <= 120 and out.returncode == 0,
                 "exit 0" if out.returncode == 0 else f"exit {out.returncode}")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-w1", action="store_true")
    parser.add_argument("--skip-fleet", action="store_true", help="leave out the retrain DAG run and the training "
                        "pool slots (about 5 minutes)")
    parser.add_argument("--reference", type=int, default=3, metavar="N",
                        help="symbols of W1 to run through the seed-style reference beside the suite (0 = skip; "
                             "about a minute each)")
    parser.add_argument("--demo", action="store_true", help="also time the end-to-end demo (about 4 minutes)")
    parser.add_argument("--out", default=str(REPO_ROOT / "bench-results.json"))
    parser.add_argument("--only", nargs="*", help="section titles to run (default: all)")
    args = parser.parse_args(argv)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    rows: list[dict] = []
    sections = [("DAG parse", parse_times)]
    bars = _w1_bars()
    sections.append(("features", lambda: feature_speed(bars)))
    if not args.skip_w1:
        sections.append(("W1", lambda: w1(bars)))
    if args.reference:
        sections.append(("W1 vs reference", lambda: w1_against_reference(bars, max(3, args.reference))))
    if not args.skip_w1:
        sections.append(("feature selection", lambda: feature_selection_effect(bars)))
    from market_mlops.dev.bench.explain_costs import explain_and_stress_costs
    from market_mlops.dev.bench.learning_loop import (
        consensus_versus_anchor,
        detector_calibration,
        label_balance_and_refit_cost,
    )
    from market_mlops.dev.bench.promotion import false_promotions

    sections += [("gate", false_promotions), ("ingestion", ingestion_cost), ("drift and refresh", drift_and_refresh),
                 ("drift bands", detector_calibration), ("consensus", consensus_versus_anchor), ("labels and refit", label_balance_and_refit_cost),
                 ("audit and stress", explain_and_stress_costs)]
    if not args.skip_fleet:
        from market_mlops.dev.bench.fleet import fleet_figures

        sections.append(("retrain DAG and fleet", fleet_figures))
    if args.demo:
        sections.append(("demo", demo_time))
    for title, section in sections:
        if args.only and title not in args.only:
            continue
        print(f"... {title}", flush=True)
        rows += section()
    width = max(len(r["figure"]) for r in rows)
    print(f"\n{'figure':<{width}}  {'value':>10} {'unit':<11} {'target':<8} {'ok':<4} note")
    for r in rows:
        ok = "" if r["meets_target"] is None else ("yes" if r["meets_target"] else "NO")
        print(f"{r['figure']:<{width}}  {r['value']:>10} {r['unit']:<11} {r['target']:<8} {ok:<4} {r['note']}")
    Path(args.out).write_text(json.dumps({"measured_at": dt.datetime.now(dt.UTC).isoformat(), "machine_cores": os.cpu_count(),
                                          "rows": rows}, indent=2))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
