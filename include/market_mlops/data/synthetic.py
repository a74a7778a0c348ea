"""Synthetic OHLCV bars on a real exchange calendar, deterministic by seed.

Each (symbol, timeframe) path starts at a fixed origin session and is built from independent random streams with
causal filters only, so the bars of a session are the same whatever range is asked for (backfills reproduce).

Ingredients:
- volatility regimes: a slow latent state switches per-bar volatility between calm and stressed;
- a benchmark: every symbol's shocks share a market factor with the benchmark symbol (correlation `market_corr`);
- a planted, tunable predictable component: a short-memory order-flow state that shows in volume and drifts the
  next bars' returns in its direction of the last bar (`signal_strength` = 0 gives a pure random walk, so a model
  must not find anything); short memory keeps the naive persistence baseline from reading it off past labels;
- an optional distribution shift after a date: higher volatility, heavier volume, the flow effect reversed (`regime`),
  or the flow effect reversed alone (`flow`: the models' edge turns against them on an unchanged market).
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from market_mlops.config import PipelineConfig, get_config
from market_mlops.data import calendar
from market_mlops.data.bars import with_canonical_dtypes

_STREAMS = ("market", "idio", "trend", "regime", "gap", "wick_high", "wick_low", "volume", "flow_sign")
_TRADING_MINUTES_PER_YEAR = 252 * 390
_SESSION_MINUTES = 390
# Random streams are keyed by bar length; these four keep the paths of earlier releases byte for byte.
_STREAM_KEYS = {15: 0, 60: 1, 240: 2, 1440: 3}


def _configured_minutes() -> dict[str, int]:
    return get_config().bar_minutes


@dataclass(frozen=True)
class GeneratorSpec:
    seed: int = 7
    origin: dt.date = dt.date(2018, 1, 2)
    exchange: str = "XNYS"
    calendars: dict[str, str] = field(default_factory=dict, compare=False, hash=False)  # symbol -> own calendar
    benchmark: str | None = "SPY"
    signal_strength: float = 0.3
    shift_after: dt.date | None = None
    shift_kind: str = "regime"  # regime: volatility x2.5, volume x3, flow reversed; flow: only the flow reversed
    market_corr: float = 0.6
    flow_half_life_bars: float = 3.0
    timeframe_minutes: dict[str, int] = field(default_factory=_configured_minutes, compare=False, hash=False)

    def calendar_of(self, symbol: str) -> str:
        return self.calendars.get(symbol, self.exchange)

    def minutes(self, timeframe: str) -> int:
        if timeframe not in self.timeframe_minutes:
            raise ValueError(f"unknown timeframe {timeframe!r}: configured are {sorted(self.timeframe_minutes)}")
        return self.timeframe_minutes[timeframe]


def _stable_int(text: str) -> int:
    return zlib.crc32(text.encode())


def _stream(spec: GeneratorSpec, key: str, timeframe: str, name: str, n: int) -> np.ndarray:
    minutes = spec.minutes(timeframe)
    tf_index = _STREAM_KEYS.get(minutes, minutes)
    rng = np.random.default_rng([spec.seed, _stable_int(key), tf_index, _STREAMS.index(name)])
    return rng.standard_normal(n)


def _ar1(noise: np.ndarray, rho: float) -> np.ndarray:
    """Causal AR(1) with unit stationary variance."""
    return lfilter([np.sqrt(1 - rho**2)], [1, -rho], noise)


def _symbol_traits(symbol: str) -> tuple[float, float, float]:
    """(annual volatility, start price, base volume) fixed per symbol name."""
    h = _stable_int(symbol)
    annual_vol = 0.15 + (h % 1000) / 1000 * 0.25
    start_price = 20 + (h // 1000) % 400
    base_volume = 1e5 * (1 + (h // 7) % 50)
    return annual_vol, float(start_price), float(base_volume)


def _path(spec: GeneratorSpec, symbol: str, timeframe: str, last_session: dt.date) -> pd.DataFrame:
    """The whole path of one series from the origin: one generative story, read top to bottom (long on purpose:
    the causal order of its steps, regime -> shocks -> flow -> prices -> wicks -> volume, is what to check)."""
    own = spec.calendar_of(symbol)
    sessions = calendar.sessions_between(own, spec.origin, last_session)
    stamps = calendar.bar_opens(own, spec.minutes(timeframe), sessions)
    n = len(stamps)
    if n == 0:
        return pd.DataFrame()
    minutes = min(spec.minutes(timeframe), _SESSION_MINUTES)
    annual_vol, start_price, base_volume = _symbol_traits(symbol)
    sigma0 = annual_vol * np.sqrt(minutes / _TRADING_MINUTES_PER_YEAR)

    # Volatility regime: calm (x1) or stressed (x2.2), switching slowly.
    regime_state = _ar1(_stream(spec, symbol, timeframe, "regime", n), 0.995)
    stressed = regime_state > 0.9
    sigma = sigma0 * np.where(stressed, 2.2, 1.0)

    # Shocks: a market factor shared with the benchmark plus an idiosyncratic part.
    market = _stream(spec, "__market__", timeframe, "market", n)
    if symbol == spec.benchmark:
        shocks = market
    else:
        c = spec.market_corr
        shocks = c * market + np.sqrt(1 - c**2) * _stream(spec, symbol, timeframe, "idio", n)

    # Planted predictable component: order-flow pressure with a direction that persists for a few bars. It shows
    # in the bar's volume (size) and in its wicks (buyers leave long lower wicks, sellers long upper ones), and it
    # pushes the next bars' returns its way. Returns themselves carry little of it, so the naive persistence
    # baseline cannot read it off past labels while a model of the bar shape can.
    rho = 0.5 ** (1 / spec.flow_half_life_bars)
    flow = np.abs(_ar1(_stream(spec, symbol, timeframe, "trend", n), 0.5))
    side = np.sign(_ar1(_stream(spec, symbol, timeframe, "flow_sign", n), rho))
    impulse = np.concatenate([[0.0], (flow * side)[:-1]])
    pressure = lfilter([1.0], [1.0, -0.4], impulse)  # each bar's flow keeps pushing for a few bars
    volume_mult = np.ones(n)
    effect = np.full(n, spec.signal_strength)
    if spec.shift_after is not None:
        after = stamps["session"].to_numpy() > np.datetime64(spec.shift_after)
        if spec.shift_kind == "regime":
            sigma = np.where(after, sigma * 2.5, sigma)
            volume_mult = np.where(after, 3.0, 1.0)
        effect = np.where(after, -spec.signal_strength, effect)  # the flow effect reverses
    returns = sigma * (effect * pressure + shocks)
    close = start_price * np.exp(np.cumsum(returns))
    prev_close = np.concatenate([[start_price], close[:-1]])
    open_ = prev_close * np.exp(0.1 * sigma * _stream(spec, symbol, timeframe, "gap", n))
    tilt = np.clip(flow, 0, 2) * side / 2  # in [-1, 1]: positive = buying pressure = long lower wick
    wick_high = 0.3 * sigma * np.abs(_stream(spec, symbol, timeframe, "wick_high", n)) * (1 - 0.7 * tilt)
    wick_low = 0.3 * sigma * np.abs(_stream(spec, symbol, timeframe, "wick_low", n)) * (1 + 0.7 * tilt)
    high = np.maximum(open_, close) * np.exp(wick_high)
    low = np.minimum(open_, close) * np.exp(-wick_low)
    vol_noise = _stream(spec, symbol, timeframe, "volume", n)
    volume = np.round(base_volume * volume_mult * np.exp(0.25 * vol_noise + 0.8 * flow + 0.2 * np.abs(shocks))
                      * np.where(stressed, 1.6, 1.0))

    return pd.DataFrame(
        {
            "symbol": symbol,
            "timeframe": timeframe,
            "ts": stamps["ts"],
            "session": stamps["session"],
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )


def generate_bars(
    spec: GeneratorSpec, symbols: list[str], timeframe: str, start: dt.date, end: dt.date
) -> pd.DataFrame:
    """Canonical bars of `symbols` for the sessions start..end (inclusive)."""
    if start < spec.origin:
        raise ValueError(f"synthetic data starts at origin {spec.origin}; asked for {start}")
    frames = []
    for symbol in symbols:
        path = _path(spec, symbol, timeframe, end)
        if path.empty:
            continue
        sessions = path["session"].dt.date
        frames.append(path[(sessions >= start) & (sessions <= end)])
    if not frames:
        from market_mlops.data.bars import empty_bars

        return empty_bars()
    return with_canonical_dtypes(pd.concat(frames, ignore_index=True))


def spec_from_config(cfg: PipelineConfig) -> GeneratorSpec:
    syn = cfg.source.synthetic
    return GeneratorSpec(
        seed=syn.seed,
        origin=syn.origin,
        exchange=cfg.universe.exchange,
        calendars=dict(cfg.universe.calendars),
        benchmark=cfg.universe.benchmark,
        signal_strength=syn.signal_strength,
        shift_after=syn.shift_after,
        shift_kind=syn.shift_kind,
        timeframe_minutes=cfg.bar_minutes,
    )
