"""The canonical bar schema every source produces and every consumer reads."""

from __future__ import annotations

import pandas as pd

COLUMNS = ["symbol", "timeframe", "ts", "open", "high", "low", "close", "volume"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
DTYPES = {
    "symbol": "string",
    "timeframe": "string",
    "ts": "datetime64[ns, UTC]",
    "open": "float64",
    "high": "float64",
    "low": "float64",
    "close": "float64",
    "volume": "float64",
}


def empty_bars() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in DTYPES.items()})


def with_canonical_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns in canonical order and dtypes; rows sorted by (symbol, timeframe, ts)."""
    out = frame[COLUMNS].astype(DTYPES)
    return out.sort_values(["symbol", "timeframe", "ts"], kind="mergesort").reset_index(drop=True)
