"""Feature selection is fitted on a fit's own training rows: redundant copies and useless columns go, nothing later
decides what an earlier fit sees."""

from __future__ import annotations

import numpy as np

from market_mlops.config import FeatureSelectionSpec
from market_mlops.model.selection import select_features, uncorrelated_columns


def _table(rows: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=rows)
    y = np.digitize(signal + rng.normal(scale=0.7, size=rows), [-0.4, 0.4])  # three classes from the signal
    columns = {"noise_a": rng.normal(size=rows), "copy": signal + rng.normal(scale=0.05, size=rows),
               "signal": signal, "constant": np.zeros(rows), "noise_b": rng.normal(size=rows)}
    return np.column_stack(list(columns.values())).astype(np.float32), y, list(columns)


def test_of_a_correlated_pair_the_more_useful_stays_and_a_constant_column_goes():
    X, y, names = _table()
    chosen = select_features(X, y, np.arange(len(y)), names, FeatureSelectionSpec(max_abs_correlation=0.95), 42)
    table = chosen.table.set_index("feature")
    assert table.loc["constant", "reason"] == "low_importance"
    kept_of_pair = {"copy", "signal"} & set(chosen.names())
    assert len(kept_of_pair) == 1
    dropped = ({"copy", "signal"} - kept_of_pair).pop()
    assert table.loc[dropped, "reason"] == "correlated" and table.loc[dropped, "correlated_with"] in kept_of_pair
    assert table.loc[next(iter(kept_of_pair)), "importance"] >= table.loc[dropped, "importance"]  # ranked first
    assert {"noise_a", "noise_b"} <= set(chosen.names())  # weak, but above 0.1% of the gain


def test_selection_reads_only_the_fits_rows():
    X, y, names = _table()
    rows = np.arange(1000)
    later = X.copy()
    later[1000:, 2] = 0.0  # rewrite everything after the fit's rows: the signal column becomes constant there
    before = select_features(X, y, rows, names, FeatureSelectionSpec(max_abs_correlation=0.95), 42)
    after = select_features(later, y, rows, names, FeatureSelectionSpec(max_abs_correlation=0.95), 42)
    assert before.names() == after.names()
    assert before.table.equals(after.table)


def test_the_greedy_pass_keeps_the_first_in_ranking_order_and_ignores_constants():
    rng = np.random.default_rng(1)
    a = rng.normal(size=500)
    X = np.column_stack([a, a * 2 + 1e-3 * rng.normal(size=500), np.ones(500), rng.normal(size=500)])
    assert uncorrelated_columns(X, 0.95) == ([0, 2, 3], {1: 0})
    assert uncorrelated_columns(X, 0.95, np.array([1, 0, 2, 3])) == ([1, 2, 3], {0: 1})
