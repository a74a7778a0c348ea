"""A batch against the stored history: does its first bar continue the last stored one, and does it change bars that
are already stored? Pure functions of two frames (the gate loads the stored bars and runs them).

- Continuity: the first new bar of each (symbol, timeframe) against the last stored bar before it. A price jump
  beyond `validation.max_abs_return` cannot be told from a wrong file at a boundary (cents for dollars, another
  ticker's file, an unadjusted split), so it is rejected unless the run accepts gaps; a split ratio with volume
  moving the other way is named as a split; a volume scale change by 100x or more is rejected. When sessions lie
  between the two bars (a backfill whose runs gate in parallel, a vendor late by days) the limit grows with the
  square root of their number, as a random walk's range does; a unit change stays a unit change.
- Restatements: bars whose timestamp is stored but whose OHLCV differ. Rejected unless the run allows them; then
  counted (rows changed per symbol) for the version record and an alert.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from market_mlops.data.corporate_actions import PRICE_TOLERANCE, match_ratio

VALUE_COLUMNS = ["open", "high", "low", "close", "volume"]
RELATIVE_TOLERANCE = 1e-6  # a re-sent bar that differs less than this (float formatting) is the same bar
UNIT_FACTORS = (100.0, 0.01, 1000.0, 0.001)
VOLUME_SCALE_LIMIT = 100.0
VOLUME_BARS = 20


@dataclass(frozen=True)
class Break:
    symbol: str
    timeframe: str
    kind: str  # "unit_change", "split", "price_gap", "volume_scale"
    message: str


@dataclass(frozen=True)
class Restatement:
    symbol: str
    timeframe: str
    changed: int
    unchanged: int
    first: pd.Timestamp
    last: pd.Timestamp
    largest: str  # the largest relative change, with its column, bar and values

    def describe(self) -> str:
        return (f"{self.symbol} {self.timeframe}: {self.changed} stored bar(s) would change between "
                f"{self.first:%Y-%m-%d %H:%M} and {self.last:%Y-%m-%d %H:%M}; largest change {self.largest}")


def _where(row: pd.Series) -> str:
    return f"{row['ts']:%Y-%m-%d %H:%M}" + (f" in {row['source_file']}" if "source_file" in row else "")


def continuity_break(symbol: str, timeframe: str, new: pd.DataFrame, stored: pd.DataFrame,
                     max_abs_log_return: float, sessions_apart: int = 1) -> Break | None:
    """Whether the first bar of `new` (sorted, bars after the stored ones) continues `stored` (sorted, before it);
    `sessions_apart`: sessions after the stored bar's up to the new bar's (1 for the next session or the same one)."""
    if new.empty or stored.empty:
        return None
    first, last = new.iloc[0], stored.iloc[-1]
    move = float(first["close"] / last["close"])
    evidence = (f"close {first['close']:g} at {_where(first)} after stored close {last['close']:g} at "
                f"{last['ts']:%Y-%m-%d %H:%M}")
    if not np.isfinite(move) or move <= 0:
        return None  # a missing or non-positive price: the row checks report it
    unit = next((f for f in UNIT_FACTORS if abs(np.log(move / f)) < 0.1), None)
    if unit is not None:
        return Break(symbol, timeframe, "unit_change", f"{symbol} {timeframe}: {evidence} (x{move:.4g}): a price unit "
                     f"change ({'cents for dollars' if unit == 100 else f'x{unit:g}'}?) or another instrument's file")
    before = stored["volume"].tail(VOLUME_BARS).median()
    after = new["volume"].head(VOLUME_BARS).median()
    ratio = match_ratio(1 / move, PRICE_TOLERANCE)
    if ratio is not None and before > 0 and after > 0 and np.log(after / before) * np.sign(np.log(ratio)) >= abs(np.log(ratio)) / 4:
        return Break(symbol, timeframe, "split", f"{symbol} {timeframe}: {evidence} (x{move:.4g}, volume x{after / before:.3g}): "
                     f"a {_ratio_text(ratio)} split between the stored history and this batch")
    apart = max(1, sessions_apart)
    if abs(np.log(move)) > max_abs_log_return * np.sqrt(apart):
        scaled = f" x sqrt({apart} sessions since the stored bar)" if apart > 1 else ""
        return Break(symbol, timeframe, "price_gap", f"{symbol} {timeframe}: {evidence} ({(move - 1) * 100:+.1f}%, "
                     f"beyond validation.max_abs_return{scaled} at a batch boundary): another instrument's file or a gap")
    if before > 0 and after > 0 and not (1 / VOLUME_SCALE_LIMIT < after / before < VOLUME_SCALE_LIMIT):
        return Break(symbol, timeframe, "volume_scale", f"{symbol} {timeframe}: median volume {after:g} from "
                     f"{_where(first)} against stored {before:g} (x{after / before:.3g}): volume in other units "
                     "(lots, thousands) or another instrument's file")
    return None


def _ratio_text(ratio: float) -> str:
    return f"{ratio:g}:1" if ratio >= 1 else f"1:{1 / ratio:g}"


def restatement(symbol: str, timeframe: str, new: pd.DataFrame, stored: pd.DataFrame) -> Restatement | None:
    """The stored bars `new` would change (same timestamp, other OHLCV), or None."""
    if new.empty or stored.empty:
        return None
    both = new.merge(stored[["ts", *VALUE_COLUMNS]], on="ts", suffixes=("", "_stored"))
    if both.empty:
        return None
    fresh = both[VALUE_COLUMNS].to_numpy(float)
    old = both[[f"{c}_stored" for c in VALUE_COLUMNS]].to_numpy(float)
    differs = ~np.isclose(fresh, old, rtol=RELATIVE_TOLERANCE, atol=0, equal_nan=True)
    changed = differs.any(axis=1)
    if not changed.any():
        return None
    relative = np.where(differs, np.abs(fresh - old) / np.maximum(np.abs(old), 1e-12), 0.0)
    row, col = np.unravel_index(int(np.argmax(relative)), relative.shape)
    hit = both.iloc[row]
    largest = (f"{(fresh[row, col] / old[row, col] - 1) * 100 if old[row, col] else float('inf'):+.1f}% "
               f"({VALUE_COLUMNS[col]} at {_where(hit)}: stored {old[row, col]:g}, new {fresh[row, col]:g})")
    stamps = both.loc[changed, "ts"]
    return Restatement(symbol, timeframe, int(changed.sum()), int((~changed).sum()), stamps.min(), stamps.max(), largest)
