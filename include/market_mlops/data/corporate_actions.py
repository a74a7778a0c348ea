"""Splits and the price basis: recognise a split in a bar series and put the series on one price basis.

A split shows in raw prices as a one-bar move by a split ratio (2:1 halves the price, 1:10 multiplies it by ten)
with volume moving the other way. In a vendor file with `Adj Close`, the ratio Adj Close / Close steps by the split
ratio on the split date (dividends move it by a percent or two, never by a split ratio).

The price basis (`source.price_basis`):
- `adjusted` (default): prices before each split are divided by its ratio and volumes multiplied by it (OHLC
  scaled by Adj Close / Close when the vendor gives it, which also takes out dividends), so a training window that
  spans a split sees no fake crash;
- `raw`: prices as traded; a split bar is reported, and its move is not counted as a market move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Forward and reverse split ratios seen in practice (old shares per new share, as a price divisor).
SPLIT_RATIOS = tuple(sorted({r for base in (1.25, 1.5, 2, 3, 4, 5, 6, 7, 8, 10, 15, 20, 25, 30, 50) for r in (base, 1 / base)}))
PRICE_TOLERANCE = 0.04  # |log(move / ratio)| below this matches a ratio (a 2:1 split on a +-4% day)
FACTOR_TOLERANCE = 0.01  # Adj Close / Close steps by the ratio almost exactly (a dividend on the same day at most)
VOLUME_WINDOW = 20  # bars each side whose median volume must move inversely to the price (volume is noisy)


@dataclass(frozen=True)
class Split:
    """A split effective at the open of bar `ts`: prices before it are `ratio` times the prices after."""

    ts: pd.Timestamp
    ratio: float
    evidence: str  # "adj_close" or "price and volume"

    def describe(self, symbol: str, timeframe: str) -> str:
        new, old = (self.ratio, 1.0) if self.ratio >= 1 else (1.0, 1 / self.ratio)
        found = f" ({self.evidence})" if self.evidence else ""
        return f"{symbol} {timeframe}: {_fmt(new)}:{_fmt(old)} split on {self.ts:%Y-%m-%d %H:%M}{found}"


def _fmt(value: float) -> str:
    return f"{value:g}" if value == int(value) else {1.25: "5", 1.5: "3"}.get(round(value, 2), f"{value:g}")


def match_ratio(move: float, tolerance: float) -> float | None:
    """The split ratio a price move (before / after) matches, or None."""
    if not np.isfinite(move) or move <= 0:
        return None
    logs = np.abs(np.log(move / np.asarray(SPLIT_RATIOS)))
    best = int(np.argmin(logs))
    return SPLIT_RATIOS[best] if logs[best] < tolerance else None


def find_splits(ts: pd.Series, open_: np.ndarray, close: np.ndarray, volume: np.ndarray,
                adj_close: np.ndarray | None = None) -> list[Split]:
    """Splits in one (symbol, timeframe) series in time order. With `adj_close`, the steps of Adj Close / Close;
    without, gaps (previous close / open) that match a ratio while the median volume moves at least a quarter as
    much (in log) the other way."""
    n = len(close)
    if n < 2:
        return []
    found = []
    if adj_close is not None and np.isfinite(adj_close).all():
        factor = adj_close / close
        steps = factor[1:] / factor[:-1]
        for i in np.flatnonzero(np.abs(np.log(steps)) > np.log(1.2)) + 1:
            ratio = match_ratio(float(factor[i] / factor[i - 1]), FACTOR_TOLERANCE + 0.02)
            if ratio is not None:
                found.append(Split(pd.Timestamp(ts.iloc[i]), ratio, "adj_close"))
        return found
    gaps = close[:-1] / open_[1:]
    for i in np.flatnonzero(np.abs(np.log(gaps)) > np.log(1.2)) + 1:
        ratio = match_ratio(float(close[i - 1] / open_[i]), PRICE_TOLERANCE)
        if ratio is None:
            continue
        before = np.median(volume[max(0, i - VOLUME_WINDOW):i])
        after = np.median(volume[i:i + VOLUME_WINDOW])
        if before > 0 and after > 0 and np.log(after / before) * np.sign(np.log(ratio)) >= abs(np.log(ratio)) / 4:
            found.append(Split(pd.Timestamp(ts.iloc[i]), ratio, "price and volume"))
    return found


def split_factors(ts: pd.Series, splits: list[Split]) -> np.ndarray:
    """Per bar: the product of the ratios of the splits after it (1 for bars after the last split)."""
    factor = np.ones(len(ts))
    stamps = pd.to_datetime(ts, utc=True)
    for split in splits:
        factor[(stamps < split.ts).to_numpy()] *= split.ratio
    return factor


def adjust_series(frame: pd.DataFrame, splits: list[Split], adj_close: np.ndarray | None) -> pd.DataFrame:
    """One series on the adjusted basis: OHLC x Adj Close / Close when given (else / split factor), volume x split
    factor (so shares traded stay comparable across the split)."""
    factor = split_factors(frame["ts"], splits)
    scale = adj_close / frame["close"].to_numpy() if adj_close is not None else 1 / factor
    out = frame.copy()
    for col in ("open", "high", "low", "close"):
        out[col] = frame[col].to_numpy() * scale
    out["volume"] = frame["volume"].to_numpy() * factor
    return out


def split_like_moves(bars: pd.DataFrame) -> bool:
    """Whether a series (time order) moves by a split ratio from one bar's close to the next bar's open at a bar not
    already marked a split (`split_ratio` 1): what a file repeating a stored split shows."""
    close, open_ = bars["close"].to_numpy(dtype=float), bars["open"].to_numpy(dtype=float)
    unmarked = bars["split_ratio"].to_numpy(dtype=float)[1:] == 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        gaps = close[:-1] / open_[1:]
    return any(match_ratio(float(g), PRICE_TOLERANCE) is not None
               for g in gaps[unmarked & (np.abs(np.log(np.where(gaps > 0, gaps, 1.0))) > np.log(1.2))])


def stored_splits(new: pd.DataFrame, stored: pd.DataFrame) -> list[Split]:
    """Splits the stored history (adjusted) already took out that a file's prices still carry: on the bars both hold,
    the file's closes stand at one split ratio to the stored ones before a bar and at another after it (1 after the
    newest split). A file with `Adj Close` shows its splits itself; one without, and with volumes its vendor already
    adjusted, shows them only against what is stored."""
    both = new[["ts", "close"]].merge(stored[["ts", "close"]], on="ts", suffixes=("", "_stored")).sort_values("ts")
    if len(both) < 2:
        return []
    factor = (both["close"] / both["close_stored"]).to_numpy(dtype=float)
    found = []
    for i in np.flatnonzero(np.abs(np.log(factor[:-1] / factor[1:])) > np.log(1.2)) + 1:
        ratio = match_ratio(float(factor[i - 1] / factor[i]), FACTOR_TOLERANCE + 0.02)
        if ratio is not None and match_ratio(float(factor[i - 1]), FACTOR_TOLERANCE + 0.02) is not None:
            found.append(Split(pd.Timestamp(both["ts"].iloc[i]), ratio, "known from the stored history"))
    return found


def volumes_adjusted(new: pd.DataFrame, stored: pd.DataFrame, splits: list[Split]) -> bool:
    """Whether a file's volumes before its splits already match the stored (adjusted) ones: its vendor adjusted them,
    so only its prices are scaled."""
    both = new[["ts", "volume"]].merge(stored[["ts", "volume"]], on="ts", suffixes=("", "_stored"))
    before = both[both["ts"] < min(s.ts for s in splits)] if splits else both
    if before.empty or not (before["volume_stored"] > 0).all():
        return True
    return bool(abs(np.log(np.median(before["volume"] / before["volume_stored"]))) < 0.1)
