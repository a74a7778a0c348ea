"""Batch forecasts: each champion scores the bars after its training cutoff, up to the run's interval end.

Stored in the SQL store's `forecasts` table, one row per (model version, bar ts), upserted (a backfill of drift_check
runs several days at once, on any worker): rerunning an interval rewrites the same rows, and users query them with
SQL. A forecast resolves once `horizon` later bars exist; its realized label comes from the dataset with the label
settings the model was trained with (its band reads the bars before the forecast: callers load them with the
timeframe's warm-up).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Protocol

import numpy as np
import pandas as pd

from market_mlops.config import LabelSpec, PipelineConfig, get_config
from market_mlops.model.labels import CLASSES, direction_labels

log = logging.getLogger(__name__)
FORECAST_COLUMNS = ["symbol", "timeframe", "ts", "horizon", "model_name", "model_version", "p_bearish", "p_neutral",
                    "p_bullish", "predicted", "role"]
CHAMPION_ROLE, SHADOW_ROLE = "champion", "shadow"  # served, or a challenger's forecast beside it (never served)


def feature_window(cfg: PipelineConfig, symbol: str, timeframe: str, since: dt.datetime,
                   until: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bars and features since..until, computed with the timeframe's warm-up of earlier history, so every trailing
    window is full."""
    from market_mlops.data.dataset import load_bars
    from market_mlops.data.versioning import head_dataset
    from market_mlops.model.features import build_features

    spec = cfg.spec(timeframe)
    warmup = dt.timedelta(days=spec.warmup_days)
    benchmark = cfg.universe.benchmark
    bars = load_bars(head_dataset(cfg), timeframe, [symbol, *([benchmark] if benchmark else [])], until=until,
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


def model_labels(meta: dict[str, Any], cfg: PipelineConfig, timeframe: str) -> tuple[int, LabelSpec]:
    """(horizon, label settings) a version was trained with, from its metadata (the configured ones for a version
    from before they were recorded)."""
    from market_mlops.model.labels import spec_of_record

    spec = cfg.spec(timeframe)
    configured = cfg.labels_of(str(meta["symbol"]), timeframe) if meta.get("symbol") else spec.labels
    return int(meta.get("horizon", spec.horizon)), spec_of_record(meta.get("labels"), configured)


def with_last_known_label(feats: pd.DataFrame, close: pd.Series, horizon: int, labels: LabelSpec) -> pd.DataFrame:
    """The features and, per bar, the label of the bar `horizon` earlier (resolved by this bar's close): what the
    persistence baseline calls."""
    from market_mlops.model.ensemble_model import LAST_KNOWN_LABEL

    known = direction_labels(close.reset_index(drop=True), horizon, labels).shift(horizon)
    return feats.assign(**{LAST_KNOWN_LABEL: known.to_numpy()})


def score_and_store(model: ForecastModel, symbol: str, timeframe: str, since: dt.datetime, until: dt.datetime,
                    cfg: PipelineConfig | None = None, meta: dict[str, Any] | None = None,
                    computed: tuple[pd.DataFrame, pd.DataFrame] | None = None,
                    role: str = CHAMPION_ROLE) -> pd.DataFrame:
    """Score bars in [since, until) with `model` and upsert them into the store. `meta`: the version's metadata
    (its horizon and label settings); `computed`: bars and features already computed (`feature_window`) from `since`
    or earlier up to `until`; `role`: champion or shadow (a stored row keeps the role it was first written with: a
    promoted challenger's earlier forecasts stay shadow, they were never served)."""
    cfg = cfg or get_config()
    horizon, labels = model_labels(meta or {}, cfg, timeframe)
    own, feats = computed if computed is not None else feature_window(cfg, symbol, timeframe, since, until)
    feats = with_last_known_label(feats, own["close"], horizon, labels)
    cols = model.features
    window = feats[(feats["ts"] >= pd.Timestamp(since)) & feats[cols].notna().all(axis=1)]
    if window.empty:
        return pd.DataFrame(columns=FORECAST_COLUMNS)
    proba = model.predict_proba(window)
    out = pd.DataFrame({"symbol": symbol, "timeframe": timeframe, "ts": window["ts"].to_numpy(),
                        "horizon": horizon, "model_name": model.name,
                        "model_version": str(model.version), "p_bearish": proba[:, 0], "p_neutral": proba[:, 1],
                        "p_bullish": proba[:, 2], "predicted": [CLASSES[i] for i in proba.argmax(axis=1)],
                        "role": role})
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    upsert_forecasts(out, cfg)
    return out


def upsert_forecasts(frame: pd.DataFrame, cfg: PipelineConfig | None = None) -> None:
    """Insert or replace rows by (model, version, ts)."""
    from market_mlops.state import store, tables

    frame = frame if "role" in frame else frame.assign(role=CHAMPION_ROLE)
    rows = frame[FORECAST_COLUMNS].assign(ts=pd.to_datetime(frame["ts"], utc=True), model_version=frame["model_version"].astype(str))
    store.upsert(tables.forecasts, rows.to_dict("records"), cfg, keep=("role",))
    log.info("stored %d forecast(s) of %s", len(frame), sorted(set(frame["model_name"] + " v" + frame["model_version"])))


def load_forecasts(symbol: str, timeframe: str, cfg: PipelineConfig | None = None,
                   model_version: str | None = None, model_name: str | None = None,
                   role: str | None = None) -> pd.DataFrame:
    """The stored forecasts of a pair (of one model, of one of its versions, of one role, if given), by ts. A pair
    has one model per horizon: a version number alone names a version of each."""
    from sqlalchemy import select

    from market_mlops.state import store, tables

    t = tables.forecasts
    query = select(*(t.c[c] for c in FORECAST_COLUMNS)).where(t.c.symbol == symbol, t.c.timeframe == timeframe)
    if model_name is not None:
        query = query.where(t.c.model_name == model_name)
    if model_version is not None:
        query = query.where(t.c.model_version == str(model_version))
    if role is not None:
        query = query.where(t.c.role == role)
    rows = store.frame(query.order_by(t.c.ts, t.c.model_version), cfg)
    out = pd.DataFrame(rows, columns=FORECAST_COLUMNS)
    out["ts"] = pd.to_datetime(out["ts"], utc=True)  # SQLite returns naive UTC, PostgreSQL aware
    return out


def resolved_forecasts(forecasts: pd.DataFrame, bars: pd.DataFrame, horizon: int, labels: LabelSpec) -> pd.DataFrame:
    """Forecasts whose horizon has passed, with the realized label and whether the call was right."""
    if forecasts.empty:
        return forecasts.assign(realized=pd.Series(dtype="string"), correct=pd.Series(dtype=bool))
    bars = bars.sort_values("ts").reset_index(drop=True)
    realized = direction_labels(bars["close"], horizon, labels).to_numpy()
    # Each forecast's bar by position in the sorted stamps (a bar stamp it does not match resolves nothing).
    stamps, wanted = (pd.to_datetime(ts, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
                      for ts in (bars["ts"], forecasts["ts"]))
    if len(stamps):
        at = np.minimum(np.searchsorted(stamps, wanted), len(stamps) - 1)
        code = np.where(stamps[at] == wanted, realized[at], np.nan)
    else:
        code = np.full(len(wanted), np.nan)
    known = ~np.isnan(code)
    joined = forecasts[known].copy()
    joined["realized"] = np.asarray(CLASSES, dtype=object)[code[known].astype(int)]
    joined["correct"] = joined["realized"] == joined["predicted"]
    return joined.sort_values("ts").reset_index(drop=True)


def class_shares(labels: pd.Series | np.ndarray) -> np.ndarray:
    codes = pd.Series(labels).map({c: i for i, c in enumerate(CLASSES)}).dropna().astype(int)
    return np.bincount(codes, minlength=3) / max(len(codes), 1)
