"""The production model: an MLflow pyfunc ensemble of RandomForest (skops), XGBoost (JSON) and LightGBM (text).

Base models are stored in their safe native formats, never pickled. Every artifact's sha256 is recorded in
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
ARTIFACT_FILES = {"rf": "rf.skops", "xgb": "xgb.json", "lgbm": "lgbm.txt", "meta": "ensemble.json"}


class ModelIntegrityError(RuntimeError):
    """An artifact does not match its recorded checksum; the model is refused."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_reproducible_zip(data: bytes, path: Path) -> None:
    """skops names array files after Python object ids and stamps the current time; renumber the files in order
    of appearance in schema.json and use a fixed time, so the same model always gives the same bytes."""
    import io
    import re
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as src:
        contents = {name: src.read(name) for name in src.namelist()}
    schema = contents.pop("schema.json").decode()
    ids: dict[str, str] = {}
    pattern = re.compile(r'(?<="__id__": )\d+|\d+(?=\.npy")')
    for token in pattern.findall(schema):
        ids.setdefault(token, str(len(ids)))
    schema = pattern.sub(lambda m: ids[m.group(0)], schema)
    files = {"schema.json": schema.encode(),
             **{(f"{ids[n[:-4]]}.npy" if n.endswith(".npy") and n[:-4] in ids else n): b for n, b in contents.items()}}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, files[name])


def save_base_models(models: dict[str, Any], weights: np.ndarray, feature_names: list[str], folder: Path,
                     extra_meta: dict[str, Any] | None = None) -> dict[str, str]:
    """Write base models and metadata; returns {artifact key: sha256}."""
    import skops.io

    folder.mkdir(parents=True, exist_ok=True)
    _write_reproducible_zip(skops.io.dumps(models["rf"]), folder / ARTIFACT_FILES["rf"])
    models["xgb"].get_booster().save_model(str(folder / ARTIFACT_FILES["xgb"]))
    models["lgbm"].booster_.save_model(str(folder / ARTIFACT_FILES["lgbm"]))
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


class BaseModels:
    """The three base models loaded from verified native files."""

    def __init__(self, paths: dict[str, str]) -> None:
        import lightgbm as lgb
        import skops.io
        import xgboost as xgb

        self.meta = json.loads(Path(paths["meta"]).read_text())
        self.rf = skops.io.load(paths["rf"], trusted=RF_TRUSTED_TYPES)
        self.xgb = xgb.Booster()
        self.xgb.load_model(paths["xgb"])
        self.lgbm = lgb.Booster(model_file=paths["lgbm"])

    @property
    def features(self) -> list[str]:
        return self.meta["features"]

    def base_probas(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        import xgboost as xgb

        X = frame[self.features].to_numpy(dtype=np.float32)
        return {
            "rf": np.asarray(self.rf.predict_proba(X), dtype=float),
            "xgb": np.asarray(self.xgb.predict(xgb.DMatrix(X), iteration_range=(0, self.xgb.best_iteration + 1)
                                               if self._has_best(self.xgb) else (0, 0)), dtype=float),
            "lgbm": np.asarray(self.lgbm.predict(X, num_iteration=self.lgbm.best_iteration or None), dtype=float),
        }

    @staticmethod
    def _has_best(booster: Any) -> bool:
        try:
            return booster.best_iteration is not None
        except AttributeError:
            return False

    def predict_proba(self, frame: pd.DataFrame, weights: list[float] | np.ndarray | None = None) -> np.ndarray:
        from market_mlops.model.ensemble import blend

        probas = self.base_probas(frame)
        w = np.asarray(weights if weights is not None else self.meta["weights"], dtype=float)
        return blend([probas[k] for k in self.meta["order"]], w)


class EnsembleModel(PythonModel):
    """pyfunc wrapper: checks checksums.json, loads the base models, returns class probabilities and the label."""

    def load_context(self, context: PythonModelContext) -> None:
        paths = dict(context.artifacts)
        expected = json.loads(Path(paths.pop("checksums")).read_text())
        verify_checksums(paths, expected)
        self.models = BaseModels(paths)

    def predict(self, context: PythonModelContext | None, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        proba = self.models.predict_proba(model_input)
        classes = self.models.meta["classes"]
        out = pd.DataFrame(proba, columns=[f"p_{c.lower()}" for c in classes])
        out["label"] = [classes[i] for i in proba.argmax(axis=1)]
        return out
