"""Evaluation figures logged with every model (matplotlib, headless)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

CLASS_TICKS = ["BEAR", "NEUT", "BULL"]


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=80)  # no pyplot: no global state, nothing to close


def confusion_figure(confusion: list[list[int]]) -> Figure:
    fig = _figure(4, 4)
    ax = fig.subplots()
    matrix = np.asarray(confusion)
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set_xticks(range(3), CLASS_TICKS)
    ax.set_yticks(range(3), CLASS_TICKS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("holdout confusion matrix")
    fig.tight_layout()
    return fig


def importance_figure(importances: pd.Series, top: int = 25) -> Figure:
    fig = _figure(6, 6)
    ax = fig.subplots()
    importances.head(top)[::-1].plot.barh(ax=ax)
    ax.set_title(f"feature importance (RF, top {top})")
    fig.tight_layout()
    return fig
