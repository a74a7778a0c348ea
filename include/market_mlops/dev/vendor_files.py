"""Files shaped like what data vendors ship, written from generated bars: what the demo and the tests import the
way a user imports their own history (one file per ticker, `Date,Open,High,Low,Close,Volume,Adj Close`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from market_mlops.data import calendar
from market_mlops.data.coverage import assign_sessions
from market_mlops.data.synthetic import GeneratorSpec, generate_bars


def write_daily_csv(bars: pd.DataFrame, path: Path, adj_factor: pd.Series | None = None,
                    calendar_name: str = "XNYS") -> Path:
    """One ticker's daily bars as a vendor CSV: the session date per row (an FX session that opens on Sunday
    evening is Monday's), `Adj Close` = Close x `adj_factor` (1 = no corporate action since)."""
    factor = adj_factor.to_numpy() if adj_factor is not None else 1.0
    dates = pd.to_datetime(assign_sessions(calendar_name, bars["ts"], daily=True).astype("datetime64[ns]"))
    frame = pd.DataFrame({
        "Date": dates.dt.strftime("%Y-%m-%d").to_numpy(), "Open": bars["open"].round(4).to_numpy(),
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


@dataclass(frozen=True)
class VendorHistory:
    """What a vendor's history download looks like for a universe: one daily `SYMBOL.csv` (with `Adj Close`) and one
    intraday `SYMBOL_TF.csv` per ticker and timeframe. `listed`: symbols whose bars start later (a late listing);
    `splits`: {symbol: (date, ratio)}: daily prices before that date are as traded (ratio x today's), `Adj Close`
    holds the adjusted ones."""

    spec: GeneratorSpec
    start: dt.date
    end: dt.date
    listed: dict[str, dt.date] = field(default_factory=dict)
    splits: dict[str, tuple[dt.date, float]] = field(default_factory=dict)


def write_history(history: VendorHistory, symbols: list[str], timeframes: Mapping[str, int], folder: Path) -> list[Path]:
    """The files of `history` under `folder` (bars from the generator: the same paths the tests and the demo know)."""
    paths = []
    for tf, minutes in timeframes.items():
        bars = generate_bars(history.spec, symbols, tf, history.start, history.end)
        for symbol in symbols:
            own = bars[(bars["symbol"] == symbol) & (bars["ts"].dt.date >= history.listed.get(symbol, history.start))]
            own = own.reset_index(drop=True)
            if minutes < 1440:
                paths.append(write_intraday_csv(own, folder / f"{symbol}_{tf}.csv"))
                continue
            factor = pd.Series(1.0, index=own.index)
            if symbol in history.splits:
                day, ratio = history.splits[symbol]
                before = (own["ts"].dt.date < day).to_numpy()
                own = own.copy()
                for col in ("open", "high", "low", "close"):
                    own.loc[before, col] = own.loc[before, col] * ratio
                own.loc[before, "volume"] = own.loc[before, "volume"] / ratio
                factor[before] = 1 / ratio
            paths.append(write_daily_csv(own, folder / f"{symbol}.csv", factor, history.spec.calendar_of(symbol)))
    return paths


def write_session_drops(spec: GeneratorSpec, symbols: list[str], timeframes: Mapping[str, int], start: dt.date,
                        end: dt.date, landing: Path) -> int:
    """Each session's files as a vendor drops them: `<landing>/<session date>/SYMBOL_TF.csv`, dated by each
    symbol's own calendar (an FX pair's Good Friday has a folder of its own). Returns the number of files."""
    count = 0
    for tf, minutes in timeframes.items():
        bars = generate_bars(spec, symbols, tf, start, end)
        sessions = {s: calendar.sessions_between(spec.calendar_of(s), start, end) for s in symbols}
        for symbol in symbols:
            own = bars[bars["symbol"] == symbol]
            day_of = assign_sessions(spec.calendar_of(symbol), own["ts"], daily=minutes >= 1440)
            for day in sessions[symbol]:
                part = own[(day_of == day).to_numpy()].reset_index(drop=True)
                path = landing / day.isoformat() / f"{symbol}_{tf}.csv"
                if minutes >= 1440:
                    write_daily_csv(part, path, calendar_name=spec.calendar_of(symbol))
                else:
                    write_intraday_csv(part, path)
                count += 1
    return count
