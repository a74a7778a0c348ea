"""The naive baselines every model is held to, as probabilities (never 0 or 1): climatology, the class shares of the
rows it learned, and persistence, the class shares that followed each last known label (that of bar t - horizon,
the newest label whose future had happened by bar t).

Both are tables counted on training rows with one extra count per cell (Laplace's rule of succession), so a class
never seen in a window still gets a small probability and the log-loss of a baseline is always finite. A baseline's
call is the class it gives the highest probability: climatology calls the majority class, persistence the class
that most often followed the last known one (usually that same label).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

N_CLASSES = 3
CLIMATOLOGY, PERSISTENCE = "climatology", "persistence"
BASELINES = (CLIMATOLOGY, PERSISTENCE)
PROBABILITY_FLOOR = 0.01  # no served probability is below this (and none above 1 - 2 x this)
PRIOR_COUNT = 1.0  # per class and table row


def floor_probabilities(proba: np.ndarray, floor: float = PROBABILITY_FLOOR) -> np.ndarray:
    """Rows of `proba` with every entry at least `floor`, still summing to one: the share above the floor is scaled
    down, so the ranking of the classes is kept and a certain forecast becomes 1 - 2 x floor."""
    p = np.clip(np.asarray(proba, dtype=float), 0.0, None)
    p = p / np.where(p.sum(axis=1, keepdims=True) > 0, p.sum(axis=1, keepdims=True), 1.0)
    return floor + (1 - N_CLASSES * floor) * p


def known_codes(last_known: np.ndarray | None, rows: int) -> np.ndarray:
    """Last known labels as integer codes, -1 where none is known (NaN)."""
    if last_known is None:
        return np.full(rows, -1)
    values = np.asarray(last_known, dtype=float)
    return np.where(np.isfinite(values), np.nan_to_num(values, nan=-1), -1).astype(int)


@dataclass(frozen=True)
class BaselineTables:
    """The two baselines as fitted: climatology (3 shares) and persistence (one row of 3 shares per last known
    label; a row without a known label reads climatology)."""

    climatology: np.ndarray
    persistence: np.ndarray
    rows: int = 0

    @classmethod
    def fit(cls, y: np.ndarray, last_known: np.ndarray | None) -> BaselineTables:
        y = np.asarray(y, dtype=int)
        counts = np.bincount(y, minlength=N_CLASSES).astype(float) + PRIOR_COUNT
        codes = known_codes(last_known, len(y))
        table = np.full((N_CLASSES, N_CLASSES), PRIOR_COUNT)
        known = codes >= 0
        np.add.at(table, (codes[known], y[known]), 1.0)
        return cls(counts / counts.sum(), table / table.sum(axis=1, keepdims=True), int(len(y)))

    def probabilities(self, rule: str, last_known: np.ndarray | None, rows: int) -> np.ndarray:
        """A baseline's probabilities for `rows` forecasts (`last_known`: each row's last known label)."""
        if rule == CLIMATOLOGY:
            return floor_probabilities(np.tile(self.climatology, (rows, 1)))
        if rule != PERSISTENCE:
            raise ValueError(f"unknown baseline {rule!r}: {' or '.join(BASELINES)}")
        codes = known_codes(last_known, rows)
        out = np.where((codes >= 0)[:, None], self.persistence[np.maximum(codes, 0)], self.climatology)
        return floor_probabilities(out)

    def all_probabilities(self, last_known: np.ndarray | None, rows: int) -> dict[str, np.ndarray]:
        return {rule: self.probabilities(rule, last_known, rows) for rule in BASELINES}

    def record(self) -> dict[str, Any]:
        """As stored in a version's metadata (`baselines`)."""
        return {CLIMATOLOGY: [round(float(v), 6) for v in self.climatology],
                PERSISTENCE: [[round(float(v), 6) for v in row] for row in self.persistence], "rows": self.rows}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> BaselineTables:
        return cls(np.asarray(record[CLIMATOLOGY], dtype=float), np.asarray(record[PERSISTENCE], dtype=float),
                   int(record.get("rows", 0)))

    @classmethod
    def of_majority(cls, majority_class: int) -> BaselineTables:
        """Tables for a version from before baselines had probabilities: its majority class, as the old one-hot
        (0.98) call it served, floored like any other."""
        shares = np.full(N_CLASSES, 0.01)
        shares[int(majority_class)] = 0.98
        return cls(shares, np.eye(N_CLASSES) * 0.97 + 0.01, 0)
