"""What a registered version records about how it was made: the code's commit, the packages' versions and the span
its fit and its evaluation covered (tags a retrain and a baseline version write alike)."""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from typing import TYPE_CHECKING

from market_mlops.config import REPO_ROOT

if TYPE_CHECKING:
    import pandas as pd

    from market_mlops.model.training import TrainedEnsemble


@functools.cache  # a worker's code does not change under it: one `git` process, not one per model
def git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.cache
def package_versions() -> dict[str, str]:
    names = ["apache-airflow", "mlflow", "scikit-learn", "xgboost", "lightgbm", "pandas", "great-expectations", "dvc"]
    out = {}
    for n in names:
        try:
            out[f"pkg.{n}"] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out


def fit_span(bars: pd.DataFrame, trained: TrainedEnsemble) -> dict[str, str]:
    """Where the served models' fit ended and where the evaluation the gate read ended (bar times, UTC)."""
    from market_mlops.registry import versions

    return {versions.FIT_END_TAG: str(bars["ts"].iloc[trained.fit_rows - 1]),
            versions.EVALUATION_END_TAG: str(bars["ts"].iloc[trained.holdout_index[-1]]),
            "fit.refit": "full" if trained.refit else "none"}
