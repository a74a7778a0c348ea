"""Feature selection, fitted on one split's training rows only: correlated-feature removal, then importance ranking.

Selection is part of the fit, not of the data: each walk-forward fold, the holdout fit and the refit choose their own
features from the rows they train on. Selecting once on every row would let the holdout's rows decide which features
the evaluated model sees (look-ahead through selection), and the fold scores would flatter the selection.

1. Ranking: a small class-weighted LightGBM model on every feature; each feature's share of its total split gain.
2. Redundancy: in ranking order, a feature whose |Pearson rho| with a feature already kept exceeds
   `max_abs_correlation` is dropped (of a correlated pair, the more useful one stays).
3. Importance: a kept feature with less than `min_importance` of the gain is dropped. When the ranking model made no
   split (pure noise) nothing is dropped for importance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from market_mlops.config import FeatureSelectionSpec

RANKING_ROUNDS = 40  # enough splits for a gain ranking; it is a filter, not a model (never more than the boosters get)


@dataclass(frozen=True)
class FeatureSelection:
    kept: np.ndarray  # column positions, in the table's order
    table: pd.DataFrame  # feature, kept, reason (kept | correlated | low_importance), correlated_with, importance

    def names(self) -> list[str]:
        return [str(n) for n in self.table.loc[self.table["kept"], "feature"]]

    def summary(self, spec: FeatureSelectionSpec) -> str:
        reasons = self.table["reason"].value_counts()
        return (f"selected {len(self.kept)} of {len(self.table)} features ({int(reasons.get('correlated', 0))} "
                f"correlated above |rho| {spec.max_abs_correlation}, {int(reasons.get('low_importance', 0))} below "
                f"{spec.min_importance:g} of the split gain)")


def ranking_rounds(boost_rounds: int) -> int:
    """Rounds of the ranking model for a fit whose boosters get at most `boost_rounds`: a filter costs no more
    than the model it filters for (a 10-round fleet ranks in 10 rounds, not 40)."""
    return max(1, min(RANKING_ROUNDS, boost_rounds))


def uncorrelated_columns(X: np.ndarray, max_abs_correlation: float,
                         order: np.ndarray | None = None) -> tuple[list[int], dict[int, int]]:
    """(kept column positions, {dropped: the kept column it duplicates}) by a greedy pass in `order` (most important
    first; default: column order), pure. Missing values are set to the column mean for the correlation; a constant
    column correlates with nothing."""
    filled = np.where(np.isnan(X), np.nanmean(np.where(np.isfinite(X), X, np.nan), axis=0), X)
    filled = np.nan_to_num(filled, nan=0.0, posinf=0.0, neginf=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.abs(np.corrcoef(filled, rowvar=False))
    rho = np.nan_to_num(np.atleast_2d(rho), nan=0.0)
    kept: list[int] = []
    duplicates: dict[int, int] = {}
    for j in (range(X.shape[1]) if order is None else order):
        match = next((k for k in kept if rho[j, k] > max_abs_correlation), None)
        if match is None:
            kept.append(j)
        else:
            duplicates[int(j)] = match
    return sorted(int(k) for k in kept), duplicates


def gain_shares(X: np.ndarray, y: np.ndarray, seed: int, rounds: int = RANKING_ROUNDS) -> np.ndarray:
    """Each column's share of a small LightGBM model's total split gain (zeros when it made none); unweighted, as
    the fits it chooses for are (their objective is the log-loss the gate scores)."""
    import lightgbm as lgb

    from market_mlops.model.baselines import N_CLASSES

    data = lgb.Dataset(X, y, params={"max_bin": 31, "verbose": -1, "num_threads": 1})
    model = lgb.train({"objective": "multiclass", "num_class": N_CLASSES, "num_leaves": 15, "learning_rate": 0.1,
                       "min_data_in_leaf": 20, "num_threads": 1, "seed": seed, "deterministic": True,
                       "force_row_wise": True, "verbose": -1}, data, num_boost_round=rounds)
    gains = np.asarray(model.feature_importance(importance_type="gain"), dtype=float)
    total = gains.sum()
    return gains / total if total > 0 else np.zeros_like(gains)


def select_features(X: np.ndarray, y: np.ndarray, rows: np.ndarray, names: list[str], spec: FeatureSelectionSpec,
                    seed: int, rounds: int = RANKING_ROUNDS) -> FeatureSelection:
    """The features a fit on `rows` uses, decided from those rows alone; the ranking model boosts `rounds` rounds
    (`ranking_rounds`: never more than the fit's own boosters)."""
    train = X[rows]
    everything = list(range(X.shape[1]))
    importance = gain_shares(train, y[rows], seed, rounds) if spec.min_importance > 0 or spec.max_abs_correlation < 1 \
        else np.full(X.shape[1], np.nan)
    ranked = np.argsort(-np.nan_to_num(importance, nan=0.0), kind="stable")  # ties keep the table's order
    if spec.max_abs_correlation < 1:
        kept, duplicates = uncorrelated_columns(train, spec.max_abs_correlation, ranked)
    else:
        kept, duplicates = everything, {}
    if spec.min_importance > 0 and np.nansum(importance) > 0:
        kept = [c for c in kept if importance[c] >= spec.min_importance] or kept
    kept_set = set(kept)
    table = pd.DataFrame({
        "feature": names,
        "kept": [j in kept_set for j in range(len(names))],
        "reason": ["kept" if j in kept_set else "correlated" if j in duplicates else "low_importance"
                   for j in range(len(names))],
        "correlated_with": [names[duplicates[j]] if j in duplicates else "" for j in range(len(names))],
        "importance": importance,
    })
    return FeatureSelection(kept=np.asarray(kept, dtype=int), table=table)
