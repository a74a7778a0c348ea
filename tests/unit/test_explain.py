"""Attributions: each booster's feature contributions plus its bias add up to its margin for every class (TreeSHAP
as the boosters compute it), and the drivers kept per forecast are the largest of them, signed."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

from market_mlops.model.explain import (
    booster_contributions,
    booster_margins,
    mean_abs_contributions,
    top_drivers,
)


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((600, 8)).astype(np.float32)
    y = np.digitize(X[:, 0] + 0.5 * X[:, 3] * X[:, 5] + 0.3 * rng.standard_normal(600), [-0.4, 0.4])
    return X, y


def _lightgbm(boosting: str) -> lgb.Booster:
    X, y = _data()
    params = {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1, "boosting": boosting,
              "num_leaves": 15, "min_data_in_leaf": 10}
    if boosting == "rf":
        params |= {"bagging_fraction": 0.7, "bagging_freq": 1, "feature_fraction": 0.8}
    return lgb.train(params, lgb.Dataset(X, y), num_boost_round=40)


def _xgboost() -> xgb.Booster:
    X, y = _data()
    return xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 4, "nthread": 1},
                     xgb.DMatrix(X, label=y), num_boost_round=40)


@pytest.mark.parametrize("make", [lambda: _lightgbm("gbdt"), lambda: _lightgbm("rf"), _xgboost],
                         ids=["lightgbm", "lightgbm-random-forest", "xgboost"])
def test_contributions_plus_bias_are_the_margin_of_every_class(make):
    model = make()
    X, _ = _data(seed=1)
    contributions = booster_contributions(model, X)
    margins = booster_margins(model, X)
    assert contributions.shape == (len(X), 3, X.shape[1] + 1) and margins.shape == (len(X), 3)
    # XGBoost computes contributions and margins in float32: within 1e-6 of the margin's size there (2e-6 at a margin
    # of 4 is its last bit); LightGBM in float64: within 1e-6 absolute.
    rtol = 1e-6 if isinstance(model, xgb.Booster) else 0.0
    np.testing.assert_allclose(contributions.sum(axis=2), margins, rtol=rtol, atol=1e-6)
    assert np.abs(contributions[:, :, 0]).mean() > np.abs(contributions[:, :, 7]).mean()  # x0 drives the label


def test_the_drivers_kept_are_the_largest_by_size_with_their_signs():
    row = np.array([0.1, -0.5, 0.02, 0.3, 9.0])  # four features, the bias last (never a driver)
    assert top_drivers(row, ["a", "b", "c", "d"], k=3) == [("b", -0.5), ("d", 0.3), ("a", 0.1)]
    contributions = np.zeros((2, 3, 3))
    contributions[0, 2, :2] = [1.0, -3.0]
    contributions[1, 0, :2] = [-1.0, 1.0]
    assert mean_abs_contributions(contributions, np.array([2, 0]), ["a", "b"]) == {"a": 1.0, "b": 2.0}
