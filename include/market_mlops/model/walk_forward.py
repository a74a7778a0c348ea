"""Walk-forward validation: expanding window, k folds, purge and embargo, the most recent block as holdout.

A label at row t looks `horizon` rows ahead, so the last `horizon` training rows before any test block would
see into it: they are purged, and `embargo` more rows are dropped on top.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    name: str
    train: np.ndarray
    test: np.ndarray


def walk_forward_splits(n_rows: int, folds: int, horizon: int, embargo: int, holdout_fraction: float,
                        min_train: int) -> tuple[list[Split], Split]:
    """(k development folds, holdout). Row indices are positions in time order."""
    gap = horizon + embargo
    holdout_start = int(round(n_rows * (1 - holdout_fraction)))
    dev_end = holdout_start - gap
    if dev_end < min_train + folds * max(10, gap):
        raise ValueError(f"{n_rows} labelled rows are too few for {folds} folds with min_train={min_train}, "
                         f"gap={gap} and a {holdout_fraction:.0%} holdout")
    holdout = Split("holdout", np.arange(0, dev_end), np.arange(holdout_start, n_rows))
    test_size = (dev_end - min_train - gap) // folds
    splits = []
    for k in range(folds):
        test_start = min_train + gap + k * test_size
        test_end = test_start + test_size if k < folds - 1 else dev_end
        train_end = test_start - gap
        splits.append(Split(f"fold{k + 1}", np.arange(0, train_end), np.arange(test_start, test_end)))
    return splits, holdout
