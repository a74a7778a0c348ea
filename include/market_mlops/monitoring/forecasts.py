"""Batch forecasts: each champion scores the bars after its training cutoff, up to the run's interval end.

Stored in `data/forecasts/symbol=S/timeframe=T/<YYYY-MM>.parquet`, one row per (bar ts, model version), upserted
under a lock (a backfill of drift_check runs several days at once, whatever the DAG's max_active_runs): rerunning
an interval rewrites the same rows. A forecast resolves once `horizon` later bars exist; its realized
label comes from the dataset with the same threshold the model was trained on.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from market_mlops.config import PipelineConfig, get_config
from market_mlops.data.storage import directory_lock, write_parquet_atomic
from market_mlops.model.labels import CLASSES, direction_labels

log = logging.getLogger(__name__)
FORECAST_COLUMNS = ["symbol", "timeframe", "ts", "horizon", "model_name", "model_version", "p_bearish", "p_neutral",
                    "p_bullish", "predicted"]


def forecast_root(cfg: PipelineConfig) -> Path:
    return cfg.data_root / "forecasts"


def feature_window(cfg: PipelineConfig, symbol: str, timeframe: str, since: dt.datetime,
                   until: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bars and features since..until, computed with the timeframe's warm-up of earlier history, so every trailing
    window is full."""
    from market_mlops.data.dataset import load_bars
    from market_mlops.model.features import build_features

    spec = cfg.spec(timeframe)
    warmup = dt.timedelta(days=spec.warmup_days)
    benchmark = cfg.universe.benchmark
    bars = load_bars(cfg.data_root / "dataset", timeframe, [symbol, *([benchmark] if benchmark else [])], until=until,
                     since=since - warmup)
    own = bars[bars["symbol"] == symbol].reset_index(drop=True)
    feats = build_features(own, spec.bars_per_year, bars[bars["symbol"] == benchmark] if benchmark else None)
    return own, feats


class ForecastModel(Protocol):
    """What scoring needs of a model (a verified registry version satisfies it)."""

    name: str
    version: str

    @property
    def features(self) -> list[str]: ...

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray: ...


def score_and_store(model: ForecastModel, symbol: str, timeframe: str, since: dt.datetime, until: dt.datetime,
                    cfg: PipelineConfig | None = None) -> pd.DataFrame:
    """Score bars in [since, until) with `model` and upsert them into the store."""
    cfg = cfg or get_config()
    own, feats = feature_window(cfg, symbol, timeframe, since, until)
    cols = model.features
    window = feats[(feats["ts"] >= pd.Timestamp(since)) & feats[cols].notna().all(axis=1)]
    if window.empty:
        return pd.DataFrame(columns=FORECAST_COLUMNS)
    proba = model.predict_proba(window)
    out = pd.DataFrame({"symbol": symbol, "timeframe": timeframe, "ts": window["ts"].to_numpy(),
                        "horizon": cfg.spec(timeframe).horizon, "model_name": model.name,
                        "model_version": str(model.version), "p_bearish": proba[:, 0], "p_neutral": proba[:, 1],
                        "p_bullish": proba[:, 2], "predicted": [CLASSES[i] for i in proba.argmax(axis=1)]})
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    upsert_forecasts(forecast_root(cfg), out)
    return out


def upsert_forecasts(root: Path, frame: pd.DataFrame) -> None:
    """Insert or replace rows by (ts, model version) in the monthly files the frame touches."""
    months = frame["ts"].dt.strftime("%Y-%m")
    with directory_lock(root):
        for (symbol, timeframe, month), part in frame.groupby(["symbol", "timeframe", months]):
            path = root / f"symbol={symbol}" / f"timeframe={timeframe}" / f"{month}.parquet"
            merged = pd.concat([pd.read_parquet(path), part], ignore_index=True) if path.exists() else part
            merged = merged.drop_duplicates(["ts", "model_version"], keep="last").sort_values(["ts", "model_version"])
            write_parquet_atomic(merged[FORECAST_COLUMNS].reset_index(drop=True), path)


def load_forecasts(symbol: str, timeframe: str, cfg: PipelineConfig | None = None) -> pd.DataFrame:
    cfg = cfg or get_config()
    files = sorted((forecast_root(cfg) / f"symbol={symbol}" / f"timeframe={timeframe}").glob("*.parquet"))
    if not files:
        return pd.DataFrame(columns=FORECAST_COLUMNS)
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def resolved_forecasts(forecasts: pd.DataFrame, bars: pd.DataFrame, horizon: int, threshold: float) -> pd.DataFrame:
    """Forecasts whose horizon has passed, with the realized label and whether the call was right."""
    if forecasts.empty:
        return forecasts.assign(realized=pd.Series(dtype="string"), correct=pd.Series(dtype=bool))
    bars = bars.sort_values("ts").reset_index(drop=True)
    labels = direction_labels(bars["close"], horizon, threshold)
    realized = pd.Series(labels.to_numpy(), index=bars["ts"])
    joined = forecasts.assign(label_code=forecasts["ts"].map(realized))
    joined = joined[joined["label_code"].notna()].copy()
    joined["realized"] = [CLASSES[int(v)] for v in joined["label_code"]]
    joined["correct"] = joined["realized"] == joined["predicted"]
    return joined.drop(columns="label_code").sort_values("ts").reset_index(drop=True)


def class_shares(labels: pd.Series | np.ndarray) -> np.ndarray:
    codes = pd.Series(labels).map({c: i for i, c in enumerate(CLASSES)}).dropna().astype(int)
    return np.bincount(codes, minlength=3) / max(len(codes), 1)
