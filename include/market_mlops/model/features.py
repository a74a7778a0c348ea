"""Features: about a hundred indicators in groups, vectorized (TA-Lib where it has the indicator, pandas rolling
windows for the rest). Every feature at bar t uses only bars <= t: trailing windows, no centring, no full-sample
normalization.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib

Array = np.ndarray
Columns = dict[str, np.ndarray]  # feature name -> values, filled by each group


def _ratio(a: pd.Series | np.ndarray, b: pd.Series | np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(a, dtype=float) / np.asarray(b, dtype=float) - 1.0


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


def _volatility(o: Array, h: Array, lo: Array, c: Array, v: Array, out: Columns, logret: pd.Series) -> None:
    for n in (7, 14, 21):
        out[f"atr{n}"] = talib.ATR(h, lo, c, n) / c
    out["natr14"] = talib.NATR(h, lo, c, 14) / 100
    for n in (20, 50):
        upper, middle, lower = talib.BBANDS(c, n, 2, 2)
        out[f"bb{n}_pctb"] = (c - lower) / (upper - lower)
        out[f"bb{n}_width"] = (upper - lower) / middle
    for n in (5, 10, 20, 60):
        out[f"rvol{n}"] = logret.rolling(n).std().to_numpy()
    hl = np.log(h / lo) ** 2
    co = np.log(c / o) ** 2
    for n in (10, 20):
        out[f"parkinson{n}"] = np.sqrt(pd.Series(hl).rolling(n).mean() / (4 * np.log(2))).to_numpy()
        out[f"garman_klass{n}"] = np.sqrt(pd.Series(0.5 * hl - (2 * np.log(2) - 1) * co).rolling(n).mean().clip(lower=0)).to_numpy()
    out["rvol5_20"] = out["rvol5"] / out["rvol20"]
    out["rvol20_60"] = out["rvol20"] / out["rvol60"]
    out["range"] = (h - lo) / c
    # Candle shape: lower minus upper wick over the range (absorbed selling vs absorbed buying).
    body_top, body_bottom = np.maximum(o, c), np.minimum(o, c)
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = ((body_bottom - lo) - (h - body_top)) / (h - lo)
    skew_s = pd.Series(skew)
    out["wick_skew1"] = skew
    for span in (2, 5):
        out[f"wick_skew_ewm{span}"] = skew_s.ewm(halflife=span, min_periods=span).mean().to_numpy()


def _volume(o: Array, h: Array, lo: Array, c: Array, v: Array, out: Columns) -> None:
    obv = pd.Series(talib.OBV(c, v))
    vol = pd.Series(v)
    out["obv_z20"] = ((obv - obv.rolling(20).mean()) / obv.rolling(20).std()).to_numpy()
    out["obv_slope10"] = (obv.diff(10) / vol.rolling(10).sum()).to_numpy()
    out["volume_sma20"] = _ratio(vol, vol.rolling(20).mean())
    out["volume_sma5"] = _ratio(vol, vol.rolling(5).mean())
    logv = np.log1p(vol)
    for n in (20, 60):
        out[f"logvol_z{n}"] = ((logv - logv.rolling(n).mean()) / logv.rolling(n).std()).to_numpy()
    typical = pd.Series((h + lo + c) / 3)
    for n in (10, 20):
        vwap = (typical * vol).rolling(n).sum() / vol.rolling(n).sum()
        out[f"close_vwap{n}"] = _ratio(c, vwap)
    out["adosc"] = talib.ADOSC(h, lo, c, v, 3, 10) / vol.rolling(20).mean().to_numpy()
    out["price_volume_corr20"] = pd.Series(c).pct_change().rolling(20).corr(vol.pct_change()).to_numpy()
    # Signed volume pressure: direction of each bar weighted by its volume surprise, decayed (order-flow proxy).
    surprise = ((logv - logv.rolling(60).mean()) / logv.rolling(60).std())
    signed = np.sign(pd.Series(c).diff()) * surprise
    for span in (2, 5):
        out[f"signed_volume_ewm{span}"] = signed.ewm(halflife=span, min_periods=span).mean().to_numpy()


def _returns(o: Array, h: Array, lo: Array, c: Array, v: Array, out: Columns, logret: pd.Series,
             bars_per_year: int) -> None:
    for lag in range(1, 6):
        out[f"ret_lag{lag}"] = logret.shift(lag - 1).to_numpy()
    for n in (5, 10, 20):
        out[f"ret_mean{n}"] = logret.rolling(n).mean().to_numpy()
    for n in (10, 20, 60):
        out[f"sharpe{n}"] = (logret.rolling(n).mean() / logret.rolling(n).std() * np.sqrt(bars_per_year)).to_numpy()
    out["skew20"] = logret.rolling(20).skew().to_numpy()
    out["kurt20"] = logret.rolling(20).kurt().to_numpy()
    up = (logret > 0).astype(float)
    for n in (10, 20):
        out[f"up_frac{n}"] = up.rolling(n).mean().to_numpy()
    cs = pd.Series(c)
    for n in (20, 60):
        out[f"dist_high{n}"] = _ratio(cs, pd.Series(h).rolling(n).max())
        out[f"dist_low{n}"] = _ratio(cs, pd.Series(lo).rolling(n).min())


def _calendar(ts: pd.Series, out: Columns) -> None:
    local = ts.dt.tz_convert("America/New_York")
    for name, value, period in (("dow", local.dt.dayofweek, 5), ("month", local.dt.month - 1, 12),
                                ("dom", local.dt.day - 1, 31), ("hour", local.dt.hour + local.dt.minute / 60, 24)):
        angle = 2 * np.pi * value.to_numpy(dtype=float) / period
        out[f"{name}_sin"], out[f"{name}_cos"] = np.sin(angle), np.cos(angle)


def _cross_asset(logret: pd.Series, bench: pd.Series | None, out: Columns) -> None:
    if bench is None:
        bench = pd.Series(np.zeros(len(logret)), index=logret.index)
    for n in (20, 60):
        cov = logret.rolling(n).cov(bench)
        var = bench.rolling(n).var()
        out[f"bench_corr{n}"] = logret.rolling(n).corr(bench).to_numpy()
        out[f"bench_beta{n}"] = (cov / var).to_numpy()
    for n in (5, 20):
        out[f"rel_ret{n}"] = (logret.rolling(n).sum() - bench.rolling(n).sum()).to_numpy()
    out["bench_ret1"] = bench.to_numpy()
    out["bench_ret5"] = bench.rolling(5).sum().to_numpy()


def _regime(out: Columns) -> None:
    rvol20 = pd.Series(out["rvol20"])
    out["vol_regime"] = (rvol20 / rvol20.rolling(250, min_periods=60).median()).to_numpy()
    out["trend_regime"] = np.sign(out["sma50_sma200"])
    out["high_vol_flag"] = (out["vol_regime"] > 1.5).astype(float)


def build_features(bars: pd.DataFrame, bars_per_year: int, benchmark_bars: pd.DataFrame | None = None) -> pd.DataFrame:
    """Feature frame of one (symbol, timeframe) series, indexed like `bars` (sorted by ts), ts kept as a column.

    `bars_per_year` (the timeframe spec's) annualises the Sharpe-style features. Without `benchmark_bars` the
    cross-asset features (correlation, beta, relative return) are left out."""
    bars = bars.sort_values("ts").reset_index(drop=True)
    o, h, lo, c, v = (bars[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close", "volume"))
    logret = pd.Series(np.log(c)).diff()
    bench = None
    if benchmark_bars is not None and len(benchmark_bars):
        # The benchmark's last bar stamped at or before each bar (as of): an FX pair's bars on the hour meet the
        # NYSE's half-hour bars, and hours the benchmark does not trade are a zero return, not a gap.
        b = benchmark_bars.sort_values("ts")[["ts", "close"]].astype({"ts": bars["ts"].dtype})
        aligned = pd.merge_asof(bars[["ts"]], b, on="ts", direction="backward")["close"]
        bench = pd.Series(np.log(aligned.to_numpy(dtype=float))).diff().fillna(0.0)
    out: dict[str, np.ndarray] = {}
    _price_and_averages(o, h, lo, c, v, out)
    _momentum(o, h, lo, c, v, out)
    _volatility(o, h, lo, c, v, out, logret)
    _volume(o, h, lo, c, v, out)
    _returns(o, h, lo, c, v, out, logret, bars_per_year)
    _calendar(bars["ts"], out)
    if benchmark_bars is not None:
        _cross_asset(logret, bench, out)
    _regime(out)
    frame = pd.DataFrame(out).replace([np.inf, -np.inf], np.nan).astype("float64")
    frame.insert(0, "ts", bars["ts"])
    return frame


def feature_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != "ts"]
