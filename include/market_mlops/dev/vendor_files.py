"""Files shaped like what data vendors ship, written from generated bars: what the demo and the tests import the
way a user imports their own history (one file per ticker, `Date,Open,High,Low,Close,Volume,Adj Close`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def write_daily_csv(bars: pd.DataFrame, path: Path, adj_factor: pd.Series | None = None) -> Path:
    """One ticker's daily bars as a vendor CSV: a date per row, `Adj Close` = Close x `adj_factor` (1 = no
    corporate action since)."""
    factor = adj_factor.to_numpy() if adj_factor is not None else 1.0
    frame = pd.DataFrame({
        "Date": bars["ts"].dt.strftime("%Y-%m-%d").to_numpy(), "Open": bars["open"].round(4).to_numpy(),
        "High": bars["high"].round(4).to_numpy(), "Low": bars["low"].round(4).to_numpy(),
        "Close": bars["close"].round(4).to_numpy(), "Volume": bars["volume"].round().astype("int64").to_numpy(),
        "Adj Close": (bars["close"] * factor).round(4).to_numpy()})
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def write_intraday_csv(bars: pd.DataFrame, path: Path) -> Path:
    """Intraday bars with an offset-aware timestamp per row (`Datetime`), stamped at the bar's open."""
    frame = pd.DataFrame({
        "Datetime": bars["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_numpy(), "Open": bars["open"].round(6).to_numpy(),
        "High": bars["high"].round(6).to_numpy(), "Low": bars["low"].round(6).to_numpy(),
        "Close": bars["close"].round(6).to_numpy(), "Volume": bars["volume"].round().astype("int64").to_numpy()})
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path
