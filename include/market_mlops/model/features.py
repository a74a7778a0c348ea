"""Features: about a hundred indicators in groups, vectorized (TA-Lib where it has the indicator, the trailing
windows of `rolling` for the rest: numpy running sums equal to pandas' rolling results at a fraction of the cost).
Every feature at bar t uses only bars <= t: trailing windows, no centring, no full-sample normalization.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib

from market_mlops.model import rolling as r

Array = np.ndarray
Columns = dict[str, np.ndarray]  # feature name -> values, filled by each group


def _ratio(a: Array, b: Array) -> Array:
    return a / b - 1.0


def _price_and_averages(o: Array, h: Array, lo: Array, c: Array, v: Array, out: Columns) -> None:
    for n in (5, 10, 20, 50, 100, 200):
        out[f"close_sma{n}"] = _ratio(c, talib.SMA(c, n))
    for n in (5, 10, 20, 50):
        out[f"close_ema{n}"] = _ratio(c, talib.EMA(c, n))
    out["sma5_sma20"] = _ratio(talib.SMA(c, 5), talib.SMA(c, 20))
    out["sma20_sma50"] = _ratio(talib.SMA(c, 20), talib.SMA(c, 50))
    out["sma50_sma200"] = _ratio(talib.SMA(c, 50), talib.SMA(c, 200))


def _momentum(o: Array, h: Array, lo: Array, c: Array, v: Array, out: Columns) -> None:
    for n in (7, 14, 21):
        out[f"rsi{n}"] = talib.RSI(c, n) / 100
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    out["macd"], out["macd_signal"], out["macd_hist"] = macd / c, signal / c, hist / c
    for n in (1, 3, 5, 10, 20, 60):
        out[f"roc{n}"] = talib.ROC(c, n) / 100
    k, d = talib.STOCH(h, lo, c, 14, 3, talib.MA_Type.SMA, 3, talib.MA_Type.SMA)
    out["stoch_k"], out["stoch_d"] = k / 100, d / 100
    for n in (14, 28):
        out[f"willr{n}"] = talib.WILLR(h, lo, c, n) / 100
    out["adx14"] = talib.ADX(h, lo, c, 14) / 100
    out["plus_di14"] = talib.PLUS_DI(h, lo, c, 14) / 100
    out["minus_di14"] = talib.MINUS_DI(h, lo, c, 14) / 100
    for n in (14, 20):
        out[f"cci{n}"] = talib.CCI(h, lo, c, n) / 100
    out["mom10"] = talib.MOM(c, 10) / c
    out["mfi14"] = talib.MFI(h, lo, c, v, 14) / 100
    out["ultosc"] = talib.ULTOSC(h, lo, c) / 100


def _volatility(o: Array, h: Array, lo: Array, c: Array, v: Array, out: Columns, logret: r.Trailing) -> None:
    for n in (7, 14, 21):
        out[f"atr{n}"] = talib.ATR(h, lo, c, n) / c
    out["natr14"] = talib.NATR(h, lo, c, 14) / 100
    for n in (20, 50):
        upper, middle, lower = talib.BBANDS(c, n, 2, 2)
        out[f"bb{n}_pctb"] = (c - lower) / (upper - lower)
        out[f"bb{n}_width"] = (upper - lower) / middle
    for n in (5, 10, 20, 60):
        out[f"rvol{n}"] = logret.std(n)
    hl = np.log(h / lo) ** 2
    co = np.log(c / o) ** 2
    parkinson, garman_klass = r.Trailing(hl), r.Trailing(0.5 * hl - (2 * np.log(2) - 1) * co)
    for n in (10, 20):
        out[f"parkinson{n}"] = np.sqrt(parkinson.mean(n) / (4 * np.log(2)))
        out[f"garman_klass{n}"] = np.sqrt(np.maximum(garman_klass.mean(n), 0))
    out["rvol5_20"] = out["rvol5"] / out["rvol20"]
    out["rvol20_60"] = out["rvol20"] / out["rvol60"]
    out["range"] = (h - lo) / c
    # Candle shape: lower minus upper wick over the range (absorbed selling vs absorbed buying).
    body_top, body_bottom = np.maximum(o, c), np.minimum(o, c)
    skew = ((body_bottom - lo) - (h - body_top)) / (h - lo)
    out["wick_skew1"] = skew
    for span in (2, 5):
        out[f"wick_skew_ewm{span}"] = r.ewm_mean(skew, span, span)


def _volume(o: Array, h: Array, lo: Array, c: Array, v: Array, out: Columns) -> None:
    obv = talib.OBV(c, v)
    volume, obv_sums = r.Trailing(v), r.Trailing(obv)
    out["obv_z20"] = (obv - obv_sums.mean(20)) / obv_sums.std(20)
    out["obv_slope10"] = r.diff(obv, 10) / volume.sum(10)
    out["volume_sma20"] = _ratio(v, volume.mean(20))
    out["volume_sma5"] = _ratio(v, volume.mean(5))
    logv = np.log1p(v)
    log_volume = r.Trailing(logv)
    z = {n: (logv - log_volume.mean(n)) / log_volume.std(n) for n in (20, 60)}
    for n in (20, 60):
        out[f"logvol_z{n}"] = z[n]
    traded = r.Trailing((h + lo + c) / 3 * v)
    for n in (10, 20):
        out[f"close_vwap{n}"] = _ratio(c, traded.sum(n) / volume.sum(n))
    out["adosc"] = talib.ADOSC(h, lo, c, v, 3, 10) / volume.mean(20)
    out["price_volume_corr20"] = r.rolling_corr(r.pct_change(c), r.pct_change(v), 20)
    # Signed volume pressure: direction of each bar weighted by its volume surprise, decayed (order-flow proxy).
    signed = np.sign(r.diff(c)) * z[60]
    for span in (2, 5):
        out[f"signed_volume_ewm{span}"] = r.ewm_mean(signed, span, span)


def _returns(o: Array, h: Array, lo: Array, c: Array, v: Array, out: Columns, returns: Array, logret: r.Trailing,
             bars_per_year: int) -> None:
    for lag in range(1, 6):
        out[f"ret_lag{lag}"] = r.shift(returns, lag - 1)
    for n in (5, 10, 20):
        out[f"ret_mean{n}"] = logret.mean(n)
    for n in (10, 20, 60):
        out[f"sharpe{n}"] = logret.mean(n) / logret.std(n) * np.sqrt(bars_per_year)
    out["skew20"] = logret.skew(20)
    out["kurt20"] = logret.kurt(20)
    up = r.Trailing((returns > 0).astype(float))  # the first bar's NaN return counts as not up, as before
    for n in (10, 20):
        out[f"up_frac{n}"] = up.mean(n)
    for n in (20, 60):
        out[f"dist_high{n}"] = _ratio(c, talib.MAX(h, n))
        out[f"dist_low{n}"] = _ratio(c, talib.MIN(lo, n))


DAILY_SPACING = np.timedelta64(20, "h")  # bars this far apart (median) are one a session
SESSION_SHIFT = np.timedelta64(3, "h")  # a daily bar's stamp + this, in UTC, falls on its session's date


def session_days(ts: pd.Series) -> np.ndarray:
    """The session date of each daily bar (datetime64[D]). A daily bar is stamped at its session's open or, from a
    vendor's date-only file, at 00:00 UTC of its date; every session opens between 21:00 UTC the evening before (FX,
    Sydney) and the afternoon of its date (New York), so its date is the UTC date of the stamp plus three hours. The
    New York clock is wrong here: 00:00 UTC is the previous evening there, and Monday's bar would read as Sunday."""
    stamps = pd.DatetimeIndex(ts).tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[m]")
    return (stamps + SESSION_SHIFT).astype("datetime64[D]")


def is_daily(ts: pd.Series) -> bool:
    stamps = pd.DatetimeIndex(ts).as_unit("ns").asi8
    return len(stamps) > 1 and np.median(np.diff(stamps)) >= DAILY_SPACING.astype("timedelta64[ns]").astype(np.int64)


def _calendar(ts: pd.Series, out: Columns) -> None:
    """Day of week, month, day of month and hour, as angles (numpy on the clock values): for daily bars those of the
    session's date (`session_days`, no hour), for intraday bars those of the New York clock."""
    if is_daily(ts):
        days = session_days(ts)
        minute = np.zeros(len(days), dtype=np.int64)
    else:
        local = pd.DatetimeIndex(ts).tz_convert("America/New_York").tz_localize(None).to_numpy().astype("datetime64[m]")
        days = local.astype("datetime64[D]")
        minute = (local - days).astype(np.int64)
    months = days.astype("datetime64[M]")
    dow = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    month = months.astype(np.int64) % 12
    dom = (days - months).astype(np.int64)
    # Each clock value takes few distinct values: sine and cosine from a table of them, not per bar.
    for name, value, steps, period in (("dow", dow, 7, 5), ("month", month, 12, 12), ("dom", dom, 31, 31),
                                       ("hour", minute, 1440, 1440)):
        angle = 2 * np.pi * np.arange(steps) / period
        out[f"{name}_sin"], out[f"{name}_cos"] = np.sin(angle)[value], np.cos(angle)[value]


def _cross_asset(logret: r.Trailing, bench_returns: Array | None, out: Columns) -> None:
    if bench_returns is None:
        bench_returns = np.zeros(len(logret.centred))
    bench = r.Trailing(bench_returns)
    for n in (20, 60):
        out[f"bench_corr{n}"] = logret.corr(bench, n)
        out[f"bench_beta{n}"] = logret.cov(bench, n) / bench.var(n)
    for n in (5, 20):
        out[f"rel_ret{n}"] = logret.sum(n) - bench.sum(n)
    out["bench_ret1"] = bench_returns
    out["bench_ret5"] = bench.sum(5)


def _regime(out: Columns) -> None:
    rvol20 = pd.Series(out["rvol20"])
    out["vol_regime"] = (rvol20 / rvol20.rolling(250, min_periods=60).median()).to_numpy()
    out["trend_regime"] = np.sign(out["sma50_sma200"])
    out["high_vol_flag"] = (out["vol_regime"] > 1.5).astype(float)


def build_features(bars: pd.DataFrame, bars_per_year: int, benchmark_bars: pd.DataFrame | None = None) -> pd.DataFrame:
    """Feature frame of one (symbol, timeframe) series, indexed like `bars` (sorted by ts), ts kept as a column.

    `bars_per_year` (the timeframe spec's) annualises the Sharpe-style features. Without `benchmark_bars` the
    cross-asset features (correlation, beta, relative return) are left out."""
    if not bars["ts"].is_monotonic_increasing or not isinstance(bars.index, pd.RangeIndex) or bars.index.start != 0:
        bars = bars.sort_values("ts").reset_index(drop=True)
    o, h, lo, c, v = (bars[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close", "volume"))
    returns = r.diff(np.log(c))
    logret = r.Trailing(returns)  # running sums shared by every window over the log returns
    bench = None
    if benchmark_bars is not None and len(benchmark_bars):
        bench = _benchmark_returns(bars["ts"], benchmark_bars)
    out: Columns = {}
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero range or volume gives inf: NaN below
        _price_and_averages(o, h, lo, c, v, out)
        _momentum(o, h, lo, c, v, out)
        _volatility(o, h, lo, c, v, out, logret)
        _volume(o, h, lo, c, v, out)
        _returns(o, h, lo, c, v, out, returns, logret, bars_per_year)
        _calendar(bars["ts"], out)
        if benchmark_bars is not None:
            _cross_asset(logret, bench, out)
        _regime(out)
    block = np.stack(list(out.values()))  # one row per feature: pandas keeps a float block in this layout
    block[~np.isfinite(block)] = np.nan
    frame = pd.DataFrame(block.T, columns=list(out), copy=False)
    frame.insert(0, "ts", bars["ts"].array)
    return frame


def _benchmark_returns(ts: pd.Series, benchmark_bars: pd.DataFrame) -> Array:
    """Log returns of the benchmark's last bar stamped at or before each bar (as of): an FX pair's bars on the hour
    meet the NYSE's half-hour bars, and hours the benchmark does not trade are a zero return, not a gap."""
    bench = benchmark_bars if benchmark_bars["ts"].is_monotonic_increasing else benchmark_bars.sort_values("ts")
    stamps = pd.DatetimeIndex(bench["ts"].astype(ts.dtype, copy=False)).asi8  # the same unit on both sides
    at = np.searchsorted(stamps, pd.DatetimeIndex(ts).asi8, side="right") - 1
    closes = bench["close"].to_numpy(dtype=float)
    aligned = np.where(at >= 0, closes[np.maximum(at, 0)], np.nan)
    returns = r.diff(np.log(aligned))
    return np.where(np.isnan(returns), 0.0, returns)


def feature_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != "ts"]
