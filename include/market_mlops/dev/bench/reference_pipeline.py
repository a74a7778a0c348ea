"""The pipeline issue 16 measures the suite against: written the way the usual in-house projects do it.

Exactly as the issue describes it: pandas indicators one column at a time; per walk-forward split a RandomForest
(200 trees, depth 15, min_samples_split 10, min_samples_leaf 5, balanced classes), a GradientBoosting (100 trees,
learning rate 0.05) and an XGBoost (1,000 rounds, learning rate 0.01, depth 6, early stopping after 50), fitted on
the first part of the split's training window; ridge weights on their probabilities for the last part (the
validation part); symbols one after the other. It is a yardstick for `make bench`, never used by the suite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from market_mlops.model.walk_forward import Split

SEED = 42


def reference_features(bars: pd.DataFrame, benchmark: pd.DataFrame | None) -> pd.DataFrame:
    """~70 indicators, each a pandas expression assigned as its own column (the seed-style feature code)."""
    df = bars.sort_values("ts").reset_index(drop=True)[["ts", "open", "high", "low", "close", "volume"]].copy()
    df["ret"] = df["close"].pct_change()
    for n in (5, 10, 20, 50, 100, 200):
        df[f"sma_{n}"] = df["close"].rolling(n).mean()
        df[f"close_sma_{n}"] = df["close"] / df[f"sma_{n}"] - 1
    for n in (5, 10, 20, 50):
        df[f"ema_{n}"] = df["close"].ewm(span=n, adjust=False).mean()
        df[f"close_ema_{n}"] = df["close"] / df[f"ema_{n}"] - 1
    df["sma_5_20"] = df["sma_5"] / df["sma_20"] - 1
    df["sma_20_50"] = df["sma_20"] / df["sma_50"] - 1
    df["sma_50_200"] = df["sma_50"] / df["sma_200"] - 1
    delta = df["close"].diff()
    for n in (7, 14, 21):
        gain = delta.clip(lower=0).rolling(n).mean()
        loss = (-delta.clip(upper=0)).rolling(n).mean()
        df[f"rsi_{n}"] = 1 - 1 / (1 + gain / loss)
    df["macd"] = (df["close"].ewm(span=12, adjust=False).mean() - df["close"].ewm(span=26, adjust=False).mean()) / df["close"]
    df["macd_signal"] = df["macd"].ewm(span=9, adjust=False).mean()
    df["macd_hist"] = df["macd"] - df["macd_signal"]
    for n in (1, 3, 5, 10, 20, 60):
        df[f"roc_{n}"] = df["close"].pct_change(n)
    low14, high14 = df["low"].rolling(14).min(), df["high"].rolling(14).max()
    df["stoch_k"] = (df["close"] - low14) / (high14 - low14)
    df["stoch_d"] = df["stoch_k"].rolling(3).mean()
    for n in (14, 28):
        df[f"willr_{n}"] = (df["high"].rolling(n).max() - df["close"]) / (df["high"].rolling(n).max() - df["low"].rolling(n).min())
    prev_close = df["close"].shift(1)
    df["true_range"] = pd.concat([df["high"] - df["low"], (df["high"] - prev_close).abs(),
                                  (df["low"] - prev_close).abs()], axis=1).max(axis=1)
    for n in (7, 14, 21):
        df[f"atr_{n}"] = df["true_range"].rolling(n).mean() / df["close"]
    for n in (20, 50):
        mid, sd = df["close"].rolling(n).mean(), df["close"].rolling(n).std()
        df[f"bb_{n}_pctb"] = (df["close"] - (mid - 2 * sd)) / (4 * sd)
        df[f"bb_{n}_width"] = 4 * sd / mid
    for n in (5, 10, 20, 60):
        df[f"vol_{n}"] = df["ret"].rolling(n).std()
    df["vol_5_20"] = df["vol_5"] / df["vol_20"]
    df["vol_20_60"] = df["vol_20"] / df["vol_60"]
    df["range"] = (df["high"] - df["low"]) / df["close"]
    for n in (5, 20):
        df[f"volume_sma_{n}"] = df["volume"] / df["volume"].rolling(n).mean() - 1
    for n in (20, 60):
        log_volume = np.log1p(df["volume"])
        df[f"volume_z_{n}"] = (log_volume - log_volume.rolling(n).mean()) / log_volume.rolling(n).std()
    df["obv"] = (np.sign(delta).fillna(0) * df["volume"]).cumsum()
    df["obv_z_20"] = (df["obv"] - df["obv"].rolling(20).mean()) / df["obv"].rolling(20).std()
    for lag in range(1, 6):
        df[f"ret_lag_{lag}"] = df["ret"].shift(lag - 1)
    for n in (5, 10, 20):
        df[f"ret_mean_{n}"] = df["ret"].rolling(n).mean()
    for n in (10, 20, 60):
        df[f"sharpe_{n}"] = df["ret"].rolling(n).mean() / df["ret"].rolling(n).std()
    df["skew_20"] = df["ret"].rolling(20).skew()
    df["kurt_20"] = df["ret"].rolling(20).kurt()
    for n in (20, 60):
        df[f"dist_high_{n}"] = df["close"] / df["high"].rolling(n).max() - 1
        df[f"dist_low_{n}"] = df["close"] / df["low"].rolling(n).min() - 1
    df["dow"] = df["ts"].dt.dayofweek
    df["month"] = df["ts"].dt.month
    if benchmark is not None:
        bench = benchmark.sort_values("ts").set_index("ts")["close"].reindex(df["ts"]).ffill().pct_change().to_numpy()
        df["bench_ret"] = bench
        for n in (20, 60):
            df[f"bench_corr_{n}"] = df["ret"].rolling(n).corr(df["bench_ret"])
            df[f"bench_beta_{n}"] = df["ret"].rolling(n).cov(df["bench_ret"]) / df["bench_ret"].rolling(n).var()
    levels = ["open", "high", "low", "close", "volume", "obv", "true_range",
              *[c for c in df.columns if c.startswith(("sma_", "ema_")) and c.count("_") == 1]]
    return df.drop(columns=levels).replace([np.inf, -np.inf], np.nan)


@dataclass
class SplitResult:
    test_proba: np.ndarray
    weights: np.ndarray


def _ridge_weights(probas: list[np.ndarray], y: np.ndarray) -> np.ndarray:
    """Non-negative ridge regression of the one-hot labels on each model's probabilities, normalised to one."""
    from sklearn.linear_model import Ridge

    onehot = np.eye(3)[y]
    design = np.column_stack([p.ravel() for p in probas])
    coef = Ridge(alpha=1.0, positive=True, fit_intercept=False).fit(design, onehot.ravel()).coef_
    return coef / coef.sum() if coef.sum() > 0 else np.full(len(probas), 1 / len(probas))


def fit_split(X: np.ndarray, y: np.ndarray, split: Split, horizon: int) -> SplitResult:
    """RF + GradientBoosting + XGBoost on the split's training window (its last 15% held for validation, after a
    gap of `horizon` rows), ridge weights on the validation probabilities, the blend scored on the split's test rows."""
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from xgboost import XGBClassifier

    cut = int(len(split.train) * 0.85)
    fit_rows, val_rows = split.train[: max(cut - horizon, 1)], split.train[cut:]
    rf = RandomForestClassifier(n_estimators=200, max_depth=15, min_samples_split=10, min_samples_leaf=5,
                                class_weight="balanced", n_jobs=-1, random_state=SEED).fit(X[fit_rows], y[fit_rows])
    gb = GradientBoostingClassifier(n_estimators=100, learning_rate=0.05, random_state=SEED).fit(X[fit_rows], y[fit_rows])
    xgb = XGBClassifier(n_estimators=1000, learning_rate=0.01, max_depth=6, early_stopping_rounds=50,
                        eval_metric="mlogloss", n_jobs=-1, random_state=SEED)
    xgb.fit(X[fit_rows], y[fit_rows], eval_set=[(X[val_rows], y[val_rows])], verbose=False)
    models = (rf, gb, xgb)
    weights = _ridge_weights([m.predict_proba(X[val_rows]) for m in models], y[val_rows])
    test = sum(w * m.predict_proba(X[split.test]) for w, m in zip(weights, models, strict=True))
    return SplitResult(np.asarray(test) / np.asarray(test).sum(axis=1, keepdims=True), weights)


def holdout_proba(X: np.ndarray, y: np.ndarray, folds: list[Split], holdout: Split, horizon: int) -> np.ndarray:
    """Every fold (as the seed pipeline reports fold scores), then the holdout; returns the holdout probabilities."""
    for split in folds:
        fit_split(X, y, split, horizon)
    return fit_split(X, y, holdout, horizon).test_proba
