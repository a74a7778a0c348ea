"""Each model forecast's drivers (`model.explain`) in the SQL store's `forecast_drivers` table, keyed like its
forecast: written by the drift check for the forecasts it scores (a baseline's have none: it follows the class mix),
read by the Models page, `market-mlops models --explain` and the drift report's attribution drift."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from market_mlops.model.labels import CLASSES

if TYPE_CHECKING:
    from market_mlops.config import PipelineConfig

log = logging.getLogger(__name__)


def forecast_drivers(base: Any, features: list[str], window: pd.DataFrame, forecasts: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of `forecast_drivers` for `forecasts` (stored forecast rows of one model version) from the feature rows
    they were scored on (`window`, with ts): the ensemble-weighted contributions to each forecast's called class."""
    from market_mlops.model.explain import ensemble_contributions, top_drivers

    if forecasts.empty:
        return []
    rows = window.set_index(pd.to_datetime(window["ts"], utc=True)).loc[pd.to_datetime(forecasts["ts"], utc=True)]
    contributions = ensemble_contributions(base, rows[features].to_numpy(dtype=np.float32))
    called = forecasts["predicted"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy(dtype=int)
    out = []
    for i, forecast in enumerate(forecasts.itertuples()):
        mine = contributions[i, called[i]]
        out.append({"symbol": forecast.symbol, "timeframe": forecast.timeframe,
                    "ts": pd.Timestamp(forecast.ts).to_pydatetime(), "model_name": forecast.model_name,
                    "model_version": str(forecast.model_version), "called": forecast.predicted,
                    "record": {"top": [list(d) for d in top_drivers(mine, features)],
                               "bias": round(float(mine[-1]), 6), "margin": round(float(mine.sum()), 6)}})
    return out


def store_new_drivers(base: Any, features: list[str], window: pd.DataFrame, forecasts: pd.DataFrame,
                      cfg: PipelineConfig | None = None) -> int:
    """Explain and store the forecasts of `forecasts` not explained yet (a check re-scores every bar since the
    cutoff; each is explained once); returns how many were added."""
    from market_mlops.state import store, tables

    if forecasts.empty:
        return 0
    first = forecasts.iloc[0]
    stored = store.rows(tables.forecast_drivers, cfg, model_name=str(first["model_name"]),
                        model_version=str(first["model_version"]))
    known = pd.to_datetime(pd.Series([r["ts"] for r in stored], dtype=object), utc=True)  # naive UTC from SQLite
    new = forecasts[~pd.to_datetime(forecasts["ts"], utc=True).isin(known)]
    rows = forecast_drivers(base, features, window, new)
    store.upsert(tables.forecast_drivers, rows, cfg)
    return len(rows)


def load_drivers(symbol: str, timeframe: str, model_name: str, cfg: PipelineConfig | None = None,
                 model_version: str | None = None) -> pd.DataFrame:
    """The stored drivers of a model's forecasts (of one version, if given), by ts: ts, model_version, called, top
    ([[feature, contribution]]), bias, margin."""
    from market_mlops.state import store, tables

    filters: dict[str, str] = {"symbol": symbol, "timeframe": timeframe, "model_name": model_name}
    if model_version is not None:
        filters["model_version"] = str(model_version)
    import json

    rows = store.rows(tables.forecast_drivers, cfg, **filters)
    records = [json.loads(r["record"]) if isinstance(r["record"], str) else dict(r["record"]) for r in rows]
    frame = pd.DataFrame([{"ts": r["ts"], "model_version": r["model_version"], "called": r["called"],
                           **{k: record.get(k) for k in ("top", "bias", "margin")}}
                          for r, record in zip(rows, records, strict=True)],
                         columns=["ts", "model_version", "called", "top", "bias", "margin"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.sort_values("ts").reset_index(drop=True)


def describe_drivers(top: list[list[Any]], k: int = 3) -> str:
    """`rsi_14 +0.21, vol_20 -0.08, …`: a forecast's largest drivers, signed (margin units)."""
    return ", ".join(f"{name} {value:+.3f}" for name, value in (top or [])[:k])
