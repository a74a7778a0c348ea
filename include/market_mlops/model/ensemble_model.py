"""The production model: an MLflow pyfunc ensemble of a random forest and LightGBM (both LightGBM text) and XGBoost
(JSON), or, for a series where no model has beaten them yet, the better naive baseline (`BaselineModel`).

Base models are stored in their safe native formats, never pickled (versions registered before the forest became
LightGBM's `rf` mode keep a scikit-learn forest in skops, which still loads). Every artifact's sha256 is recorded in
`checksums.json` and as tags on the run; both are checked before anything is deserialized, and a mismatch
refuses to load (`ModelIntegrityError`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

RF_TRUSTED_TYPES = ["sklearn.tree._tree.Tree", "sklearn.tree._classes.DecisionTreeClassifier",
                    "sklearn.ensemble._forest.RandomForestClassifier", "numpy.dtype"]
ARTIFACT_FILES = {"rf": "rf.txt", "xgb": "xgb.json", "lgbm": "lgbm.txt", "meta": "ensemble.json"}
LEGACY_RF_FILE = "rf.skops"  # a scikit-learn RandomForest, in versions registered before LightGBM's rf mode
BASELINE_FILE = "baseline.json"  # a baseline version's only model file: its rule
LAST_KNOWN_LABEL = "last_known_label"  # the persistence baseline's input: the label of bar t - horizon (0, 1, 2)


class ModelIntegrityError(RuntimeError):
    """An artifact does not match its recorded checksum; the model is refused."""

    retryable = False  # a retry cannot fix it: the task fails at once (orchestration.fail_now_when_permanent)
    hint = ('the stored artifact was changed or damaged: roll back to another version (model_rollback) or '
            'retrain the model')


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_files(folder: Path) -> dict[str, str]:
    """{artifact key: file name} of the model files in `folder` (a legacy version keeps its forest in skops; a
    baseline version has its rule only)."""
    if (folder / BASELINE_FILE).exists():
        return {"meta": BASELINE_FILE}
    return {**ARTIFACT_FILES, **({"rf": LEGACY_RF_FILE} if (folder / LEGACY_RF_FILE).exists() else {})}


def booster_proba(model: Any, X: np.ndarray) -> np.ndarray:
    """Class probabilities of a base model: a LightGBM or XGBoost booster (up to its early-stopped best iteration)
    or a legacy scikit-learn forest."""
    import xgboost as xgb

    if isinstance(model, xgb.Booster):
        best = model.attr("best_iteration")
        return np.asarray(model.predict(xgb.DMatrix(X), iteration_range=(0, int(best) + 1) if best else (0, 0)),
                          dtype=float)
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(X), dtype=float)
    # num_threads always: LightGBM keeps one process-wide thread count that every call resets (0 = all cores); a
    # prediction without it, beside a fit in another thread sized for 1, crashed that fit in its OpenMP region.
    return np.asarray(model.predict(X, num_iteration=model.best_iteration or None, num_threads=1), dtype=float)


def save_base_models(models: dict[str, Any], weights: np.ndarray, feature_names: list[str], folder: Path,
                     extra_meta: dict[str, Any] | None = None) -> dict[str, str]:
    """Write base models and metadata; returns {artifact key: sha256}."""
    folder.mkdir(parents=True, exist_ok=True)
    models["rf"].save_model(str(folder / ARTIFACT_FILES["rf"]))
    models["xgb"].save_model(str(folder / ARTIFACT_FILES["xgb"]))
    models["lgbm"].save_model(str(folder / ARTIFACT_FILES["lgbm"]))  # up to its best iteration
    meta = {"weights": [float(w) for w in weights], "order": ["rf", "xgb", "lgbm"], "features": feature_names,
            "classes": ["BEARISH", "NEUTRAL", "BULLISH"], **(extra_meta or {})}
    (folder / ARTIFACT_FILES["meta"]).write_text(json.dumps(meta, indent=2, sort_keys=True))
    checksums = {key: sha256_file(folder / name) for key, name in ARTIFACT_FILES.items()}
    (folder / "checksums.json").write_text(json.dumps(checksums, indent=2, sort_keys=True))
    return checksums


def verify_checksums(paths: dict[str, str], expected: dict[str, str]) -> None:
    for key, path in paths.items():
        if key not in expected:
            continue
        actual = sha256_file(Path(path))
        if actual != expected[key]:
            raise ModelIntegrityError(f"artifact {key} ({Path(path).name}) has sha256 {actual[:12]}..., recorded "
                                      f"{expected[key][:12]}...: refusing to load a modified model")


def _legacy_forest(path: str) -> Any:
    """A scikit-learn forest in skops (versions from before the binned forest). skops is imported only here: its
    import looks up scipy's ufuncs in every loaded module by name, and in a task that touches each of Airflow's
    deprecated-attribute modules (a thousand warnings in the task log)."""
    import skops.io

    return skops.io.load(path, trusted=RF_TRUSTED_TYPES)


class BaseModels:
    """The three base models loaded from verified native files."""

    def __init__(self, paths: dict[str, str]) -> None:
        import lightgbm as lgb
        import xgboost as xgb

        self.meta = json.loads(Path(paths["meta"]).read_text())
        self.rf: Any = _legacy_forest(paths["rf"]) if paths["rf"].endswith(LEGACY_RF_FILE) \
            else lgb.Booster(model_file=paths["rf"])
        self.xgb = xgb.Booster()
        self.xgb.load_model(paths["xgb"])
        self.lgbm = lgb.Booster(model_file=paths["lgbm"])

    @property
    def features(self) -> list[str]:
        return self.meta["features"]

    def base_probas(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        X = frame[self.features].to_numpy(dtype=np.float32)
        return {"rf": booster_proba(self.rf, X), "xgb": booster_proba(self.xgb, X), "lgbm": booster_proba(self.lgbm, X)}

    def blend(self, frame: pd.DataFrame, weights: list[float] | np.ndarray | None = None) -> np.ndarray:
        """The base models' probabilities blended with the ensemble weights (or `weights`), before calibration."""
        from market_mlops.model.ensemble import blend

        probas = self.base_probas(frame)
        w = np.asarray(weights if weights is not None else self.meta["weights"], dtype=float)
        return blend([probas[k] for k in self.meta["order"]], w)

    def predict_proba(self, frame: pd.DataFrame, weights: list[float] | np.ndarray | None = None) -> np.ndarray:
        """Served probabilities: the blend, pooled with the persistence baseline as calibrated at training (a
        version from before calibration: the blend), never below `baselines.PROBABILITY_FLOOR`."""
        return calibrated(self.meta, self.blend(frame, weights), frame)


def baseline_tables(meta: dict[str, Any]) -> Any:
    """A version's baselines (`model.baselines.BaselineTables`): as counted at training, or, for a version from
    before they were recorded, its majority class as the one-hot call it served."""
    from market_mlops.model.baselines import BaselineTables

    if meta.get("baselines"):
        return BaselineTables.from_record(meta["baselines"])
    return BaselineTables.of_majority(int(meta.get("majority_class", 1)))


def last_known_of(frame: pd.DataFrame, needed_by: str) -> np.ndarray:
    if LAST_KNOWN_LABEL not in frame:
        raise ValueError(f"{needed_by} needs a {LAST_KNOWN_LABEL!r} column (the label of bar t - horizon, known at "
                         "bar t; NaN where none is): score it through market_mlops.monitoring.forecasts")
    return frame[LAST_KNOWN_LABEL].to_numpy(dtype=float)


def calibrated(meta: dict[str, Any], blended: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
    """`blended` as a version serves it: through its calibration pool (which reads the persistence baseline's
    probabilities for each row), floored."""
    from market_mlops.model.baselines import PERSISTENCE, floor_probabilities
    from market_mlops.model.calibration import Calibration

    calibration = Calibration.from_record(meta.get("calibration"))
    if calibration.rows == 0 or calibration.method.startswith("none"):
        return floor_probabilities(blended)
    persistence = baseline_tables(meta).probabilities(PERSISTENCE, last_known_of(frame, "a calibrated model"),
                                                      len(frame))
    return calibration.apply(blended, persistence)


def save_baseline(rule: str, tables: Any, feature_names: list[str], folder: Path,
                  extra_meta: dict[str, Any] | None = None) -> dict[str, str]:
    """Write a baseline version's rule (`climatology`: the class shares it counted; `persistence`: the shares that
    followed each last known label) and its tables; returns {"meta": sha256}."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"kind": "baseline", "rule": rule, "baselines": tables.record(),
            "majority_class": int(np.argmax(tables.climatology)), "features": feature_names,
            "classes": ["BEARISH", "NEUTRAL", "BULLISH"], "order": [], "weights": [], **(extra_meta or {})}
    (folder / BASELINE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    checksums = {"meta": sha256_file(folder / BASELINE_FILE)}
    (folder / "checksums.json").write_text(json.dumps(checksums, indent=2, sort_keys=True))
    return checksums


class BaselineModel:
    """A naive baseline served like a model (`model.baselines`): climatology, the class shares of its training
    window, or persistence, the shares that followed the last known label (which the scoring frame carries as
    `last_known_label`, from the bars before it). A version from before baselines had probabilities (rule
    `majority`) serves its one-hot call, floored."""

    def __init__(self, paths: dict[str, str]) -> None:
        self.meta = json.loads(Path(paths["meta"]).read_text())

    @property
    def features(self) -> list[str]:
        return self.meta["features"]

    @property
    def rule(self) -> str:
        """climatology or persistence (a legacy `majority` version reads as climatology)."""
        from market_mlops.model.baselines import CLIMATOLOGY

        rule = str(self.meta["rule"])
        return CLIMATOLOGY if rule == "majority" else rule

    def predict_proba(self, frame: pd.DataFrame, weights: list[float] | np.ndarray | None = None) -> np.ndarray:
        from market_mlops.model.baselines import CLIMATOLOGY

        known = None if self.rule == CLIMATOLOGY else last_known_of(frame, "the persistence baseline")
        return baseline_tables(self.meta).probabilities(self.rule, known, len(frame))

    def calls(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(frame).argmax(axis=1)


def load_models(paths: dict[str, str]) -> BaseModels | BaselineModel:
    """The verified files of a version as its model: three boosters, or a baseline rule."""
    return BaselineModel(paths) if Path(paths["meta"]).name == BASELINE_FILE else BaseModels(paths)


class EnsembleModel(PythonModel):
    """pyfunc wrapper: checks checksums.json, loads the base models, returns class probabilities and the label."""

    def load_context(self, context: PythonModelContext) -> None:
        paths = dict(context.artifacts)
        expected = json.loads(Path(paths.pop("checksums")).read_text())
        verify_checksums(paths, expected)
        self.models = load_models(paths)

    def predict(self, context: PythonModelContext | None, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        proba = self.models.predict_proba(model_input)
        classes = self.models.meta["classes"]
        out = pd.DataFrame(proba, columns=[f"p_{c.lower()}" for c in classes])
        out["label"] = [classes[i] for i in proba.argmax(axis=1)]
        return out
