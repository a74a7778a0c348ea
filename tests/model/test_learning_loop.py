"""The learning loop on the default configuration: labels that fit the market, a served model that learned up to its
cutoff, and a champion for every series."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from market_mlops.config import LabelSpec, get_config
from market_mlops.model.labels import class_shares, direction_labels


def _garch_closes(seed: int, n: int, daily_vol: float, bars_per_day: int) -> pd.Series:
    """Closes of a GARCH(1,1) with Student-t shocks (arch's simulator): volatility clusters and fat tails, scaled to
    a daily volatility (EURUSD hourly ~0.5%/day, a stock ~1.5%/day)."""
    from arch.univariate import GARCH, StudentsT, ZeroMean

    model = ZeroMean(None, volatility=GARCH(p=1, q=1), distribution=StudentsT(seed=np.random.default_rng(seed)))
    returns = model.simulate([0.02, 0.08, 0.9, 6.0], n, burn=500)["data"].to_numpy()
    return pd.Series(100 * np.exp(np.cumsum(returns * daily_vol / np.sqrt(bars_per_day) / returns.std())))


@pytest.mark.parametrize(("kind", "timeframe", "daily_vol", "bars_per_day"), [
    ("stock", "d1", 0.015, 1), ("stock", "h1", 0.015, 7), ("fx", "h1", 0.005, 24)])
def test_every_class_keeps_its_share_with_the_default_band(kind, timeframe, daily_vol, bars_per_day):
    """The default volatility band gives each class about a third on stock-like and FX-like series; the fixed
    threshold it replaces made hourly FX almost all NEUTRAL."""
    close = _garch_closes(3, 20_000, daily_vol, bars_per_day)
    spec = get_config().spec(timeframe)
    shares = class_shares(direction_labels(close, spec.horizon, spec.labels).dropna().to_numpy())
    assert min(shares.values()) >= 0.2, shares
    fixed = class_shares(direction_labels(close, spec.horizon, LabelSpec(band="fixed", threshold=spec.labels.threshold))
                         .dropna().to_numpy())
    if kind == "fx":
        assert fixed["neutral"] > 0.8, fixed  # the 92% "flat": what the fixed threshold does to hourly FX


def test_a_label_never_changes_when_later_bars_arrive():
    close = _garch_closes(5, 3_000, 0.015, 1)
    spec = get_config().spec("d1")
    cut = 2_000
    whole = direction_labels(close, spec.horizon, spec.labels)
    before = direction_labels(close.iloc[:cut], spec.horizon, spec.labels)
    settled = cut - spec.horizon  # bars whose horizon ends before the cut
    pd.testing.assert_series_equal(whole.iloc[:settled], before.iloc[:settled])
    assert before.iloc[settled:].isna().all() and whole.iloc[settled:cut].notna().all()
    assert whole.iloc[: spec.labels.window].isna().all()  # no band before `window` returns are known


@pytest.fixture
def default_home(mlops_home, monkeypatch):
    """The default configuration (training, labels, gate), narrowed to two symbols."""
    monkeypatch.setenv("MLOPS__UNIVERSE__SYMBOLS", "SPY,AAA")
    monkeypatch.setenv("MLOPS__UNIVERSE__TIMEFRAMES", "d1")
    monkeypatch.setenv("MLOPS__UNIVERSE__CALENDARS", "{}")
    return mlops_home


def _daily_dataset(root, bars, until: dt.datetime) -> dict:
    from market_mlops.data.dataset import merge_bars

    merge_bars(root, bars)
    return {"md5": f"test-{root.name}", "path": str(root), "gx_result_id": "gx-test", "interval_end": until.isoformat()}


def _random_walk_daily(start: dt.date, end: dt.date, seed: int, phi: float = 0.0) -> pd.DataFrame:
    """Daily bars whose returns are an AR(1) with coefficient `phi` (0: a random walk, nothing to learn; < 0: mean
    reversion, which a model learns and persistence calls backwards)."""
    from scipy.signal import lfilter

    from market_mlops.data import calendar

    sessions = calendar.sessions_between("XNYS", start, end)
    stamps = calendar.bar_opens("XNYS", 1440, sessions)
    rng = np.random.default_rng(seed)
    frames = []
    for symbol in ("SPY", "AAA"):
        close = 100 * np.exp(np.cumsum(lfilter([1.0], [1.0, -phi], rng.normal(0, 0.012, len(stamps)))))
        open_ = np.concatenate([[100.0], close[:-1]])
        frames.append(pd.DataFrame({"ts": stamps["ts"], "symbol": symbol, "timeframe": "d1", "open": open_,
                                    "close": close, "high": np.maximum(open_, close) * 1.002,
                                    "low": np.minimum(open_, close) * 0.998,
                                    "volume": np.round(1e6 * np.exp(rng.normal(0, 0.3, len(stamps))))}))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.training
def test_on_defaults_the_served_model_learned_up_to_its_cutoff_and_the_gate_read_the_evaluated_fit(default_home):
    """Daily bars, default settings (a 20% holdout of 8 years): the registered model's fit ends within `horizon`
    sessions of the cutoff, its holdout figures are those of the fit that never saw the holdout, and it differs from
    that fit."""
    from market_mlops.data import calendar
    from market_mlops.data.synthetic import GeneratorSpec, generate_bars
    from market_mlops.model.training import train_ensemble
    from market_mlops.registry import store, versions
    from market_mlops.tasks.retrain import retrain_model, training_frame

    cfg = get_config()
    cutoff = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    bars = generate_bars(GeneratorSpec(seed=4, signal_strength=1.5, origin=dt.date(2016, 1, 4)), ["SPY", "AAA"], "d1", dt.date(2016, 1, 4),
                         dt.date(2025, 9, 30))
    data = _daily_dataset(default_home / "data-d1", bars, cutoff)
    summary = retrain_model("AAA", "d1", data)

    horizon = cfg.spec("d1").horizon
    last_session = calendar.session_closing_at_or_before("XNYS", cutoff).date
    fit_end = pd.Timestamp(summary["fit_end"]).date()
    sessions_after = calendar.sessions_between("XNYS", fit_end, last_session)
    assert len(sessions_after) - 1 <= horizon, (summary["fit_end"], last_session)  # the served fit reached the cutoff
    version = store.client().get_model_version("AAA-d1-direction", summary["version"])
    assert version.tags[versions.FIT_END_TAG] == summary["fit_end"]
    assert version.tags[versions.EVALUATION_END_TAG] == summary["evaluation_end"]
    run = store.client().get_run(summary["run_id"])
    assert pd.Timestamp(run.data.params["train_end"]) < pd.Timestamp(run.data.params["holdout_start"])
    assert run.data.params["refit"] == "full" and run.data.params["labels.band"] == "volatility"
    assert min(float(run.data.params[f"class_share.{c}"]) for c in ("bearish", "neutral", "bullish")) > 0.2
    # the served fit's feature selection: its table and chart in the run, its count as a parameter
    import mlflow

    table = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=summary["run_id"],
                                                            artifact_path="evaluation/feature_selection.csv"))
    assert int(run.data.params["features_selected"]) == int(table["kept"].sum()) < len(table)
    assert set(table.loc[~table["kept"], "reason"]) <= {"correlated", "low_importance"}
    assert {a.path for a in store.client().list_artifacts(summary["run_id"], "plots")} >= {
        "plots/feature_selection.svg"}

    # The same training with refit: none gives the same holdout figures: the gate decided on the evaluated fit.
    X, y, rows = training_frame(__import__("pathlib").Path(data["path"]), "AAA", "d1", cfg, cutoff,
                                cfg.training.history_years)
    # The persistence baseline the gate measured is the one a baseline champion serves: the label of the bar
    # `horizon` bars earlier, by bar (the scoring path's column), on every training row.
    from market_mlops.monitoring.forecasts import with_last_known_label

    own = bars[(bars["symbol"] == "AAA") & (bars["ts"] < cutoff)].sort_values("ts").reset_index(drop=True)
    served = with_last_known_label(own[["ts"]], own["close"], horizon, cfg.spec("d1").labels).set_index("ts")
    np.testing.assert_array_equal(rows["last_known_label"].to_numpy(),
                                  served.loc[rows["ts"], "last_known_label"].to_numpy())
    last_known = rows["last_known_label"].to_numpy(dtype=float)
    evaluated = train_ensemble(X, y, cfg.training.model_copy(update={"refit": "none"}), horizon, last_known=last_known)
    assert summary["accuracy"] == pytest.approx(
        float((evaluated.holdout_proba.argmax(axis=1) == y[evaluated.holdout_index]).mean()), abs=1e-4)
    served = versions.load_verified("AAA-d1-direction", summary["version"])
    recent = X.tail(200).assign(last_known_label=last_known[-200:])  # the scoring path's frame
    assert not np.allclose(served.predict_proba(recent), evaluated.holdout_proba[-1:].repeat(200, axis=0))
    assert not np.allclose(served.predict_proba(recent),
                           _blend(evaluated, X.tail(200)[evaluated.feature_names].to_numpy(dtype=np.float32)))
    # each fit chose its features on its own rows: the served version records the set it reads
    assert served.base.features == _refit_selection(X, y, cfg) == table.loc[table["kept"], "feature"].tolist()
    assert len(served.base.features) < len(X.columns)


def _refit_selection(X, y, cfg) -> list[str]:
    from market_mlops.model.selection import select_features

    return select_features(X.to_numpy(dtype=np.float32), y, np.arange(len(y)), list(X.columns),
                           cfg.training.feature_selection, cfg.training.seed).names()


def _blend(trained, X: np.ndarray) -> np.ndarray:
    from market_mlops.model.ensemble import blend
    from market_mlops.model.ensemble_model import booster_proba

    return blend([booster_proba(trained.models[m], X) for m in ("rf", "xgb", "lgbm")], trained.weights)


@pytest.mark.training
def test_a_series_no_model_beats_gets_the_better_baseline_as_champion_until_a_model_beats_it(default_home):
    from market_mlops.model.features import build_features
    from market_mlops.monitoring.forecasts import with_last_known_label
    from market_mlops.registry import aliases, store, versions
    from market_mlops.tasks.baseline import BASELINE_SAYS
    from market_mlops.tasks.retrain import retrain_model

    cutoff = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    noise = _daily_dataset(default_home / "noise", _random_walk_daily(dt.date(2016, 1, 4), dt.date(2025, 9, 30), 2),
                           cutoff)
    first = retrain_model("AAA", "d1", noise, horizon=1)  # one session ahead: 360 holdout outcomes
    assert first["decision"] == "kept as challenger" and first["serving"] == "baseline", first["reason"]
    name = "AAA-d1-h1-direction"
    champion = aliases.alias_version(name, aliases.CHAMPION)
    assert champion == first["champion_version"] and champion != first["version"]
    version = store.client().get_model_version(name, champion)
    assert version.tags["kind"] == "baseline" and version.tags["gate.decision"] == "baseline champion"
    assert BASELINE_SAYS in version.tags["gate.reason"] and first["baseline_rule"] in ("climatology", "persistence")
    loaded = versions.load_verified(name, alias=aliases.CHAMPION)  # signed and checked like a model
    assert loaded.is_baseline and loaded.base.rule == first["baseline_rule"]
    bars = _random_walk_daily(dt.date(2016, 1, 4), dt.date(2025, 9, 30), 2)
    own = bars[bars["symbol"] == "AAA"].reset_index(drop=True)
    feats = with_last_known_label(build_features(own, 252, bars[bars["symbol"] == "SPY"]), own["close"], 1,
                                  get_config().spec("d1").labels).tail(50)
    proba = loaded.predict_proba(feats)  # it forecasts like any champion, from the scoring path's frame
    assert proba.min() >= 0.01 and proba.max() <= 0.98  # probabilities, never a certainty
    # Its forecast depends on the last known label only (persistence) or on nothing (climatology).
    by_label = pd.DataFrame(proba).groupby(feats["last_known_label"].to_numpy()).nunique()
    assert (by_label <= 1).all().all()
    if loaded.base.rule == "climatology":
        assert len(np.unique(proba, axis=0)) == 1
    again = retrain_model("AAA", "d1", noise, horizon=1)  # a retried task: nothing registered twice
    assert again["champion_version"] == champion and len(store.client().search_model_versions(f"name = '{name}'")) == 2

    # A strong planted order-flow effect: on 360 daily holdout rows its one-session edge is proven over both baselines.
    from market_mlops.data.synthetic import GeneratorSpec, generate_bars

    planted = generate_bars(GeneratorSpec(seed=4, signal_strength=1.5, origin=dt.date(2016, 1, 4)), ["SPY", "AAA"],
                            "d1", dt.date(2016, 1, 4), dt.date(2025, 10, 31))
    signal = _daily_dataset(default_home / "signal", planted, dt.datetime(2025, 11, 1, tzinfo=dt.UTC))
    better = retrain_model("AAA", "d1", signal, horizon=1)
    assert better["decision"] == "promoted" and better["serving"] == "model", json.dumps(better)
    assert better["reason"].startswith(f"beats both baselines, replaces the baseline champion v{champion}: ")
    assert aliases.alias_version(name, aliases.CHAMPION) == better["version"]
