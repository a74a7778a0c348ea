"""The holdout metrics equal scikit-learn's definitions (computed from one confusion matrix, without its checks)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from market_mlops.model.evaluation import classification_metrics


@pytest.mark.parametrize("case", ["mixed", "never predicts bearish", "no bullish in truth", "one class"])
def test_metrics_equal_scikit_learn(case):
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 400)
    proba = rng.dirichlet(np.ones(3), 400)
    if case == "never predicts bearish":
        proba[:, 0] = 0.0
    elif case == "no bullish in truth":
        y[y == 2] = 1
    elif case == "one class":
        y[:] = 1
    pred = proba.argmax(axis=1)
    got = classification_metrics(y, proba)
    precision, recall, _, _ = precision_recall_fscore_support(y, pred, labels=[0, 1, 2], zero_division=0)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, pred))
    with warnings.catch_warnings():  # scikit-learn warns of predicted classes absent from the truth
        warnings.simplefilter("ignore")
        assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert got["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", labels=[0, 1, 2], zero_division=0))
    assert got["confusion"] == confusion_matrix(y, pred, labels=[0, 1, 2]).tolist()
    for i, name in enumerate(["bearish", "neutral", "bullish"]):
        assert got[f"precision_{name}"] == pytest.approx(precision[i])
        assert got[f"recall_{name}"] == pytest.approx(recall[i])

