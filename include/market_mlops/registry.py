"""MLflow runs, the model registry and promotion by alias (`champion`, `challenger`), with an audit trail.

- One registered model per (symbol, timeframe): `<SYMBOL>-<timeframe>-direction`.
- Registration is idempotent: a run is found by its deterministic key, a version by its run id, so a retried task
  never creates a second version.
- Promotion moves the `champion` alias in one registry call; the replaced version keeps its artifacts and gets
  tags saying by what and why, so a rollback is moving the alias back (`rollback`).
- Every alias move is appended to `<MLOPS_HOME>/registry/alias_audit.jsonl` (who, when, model, alias, from, to, why).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from market_mlops.config import PipelineConfig, get_config
from market_mlops.storage import append_jsonl, read_jsonl

log = logging.getLogger(__name__)

EXPERIMENT = "market-direction"
MODEL_URI_TAG = "mlops.model_uri"
CHAMPION, CHALLENGER = "champion", "challenger"
PIP_REQUIREMENTS = ["mlflow==3.17.2", "scikit-learn==1.9.1", "xgboost==3.2.0", "lightgbm==4.7.0", "skops",
                    "pandas==3.1.1", "numpy", "scipy"]


class RegistryError(RuntimeError):
    """The tracking server or registry refused or could not be reached; the message says what to check."""


def model_name(symbol: str, timeframe: str) -> str:
    return f"{symbol}-{timeframe}-direction"


def client(cfg: PipelineConfig | None = None):
    import mlflow
    from mlflow import MlflowClient

    cfg = cfg or get_config()
    # Download progress bars fill task logs with carriage returns; a user can still turn them back on.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(cfg.mlflow_tracking_uri)
    if cfg.mlflow_tracking_uri.startswith("sqlite:///"):
        Path(cfg.mlflow_tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=cfg.mlflow_tracking_uri)


def _already_exists(error: Exception) -> bool:
    return getattr(error, "error_code", "") == "RESOURCE_ALREADY_EXISTS"


def experiment_id(cfg: PipelineConfig | None = None, name: str = EXPERIMENT) -> str:
    """Get or create; safe when mapped tasks on a fresh tracking store race to create it (the loser re-reads)."""
    import mlflow.exceptions

    cfg = cfg or get_config()
    c = client(cfg)
    found = c.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return c.create_experiment(name, artifact_location=f"{cfg.mlflow_artifact_root.rstrip('/')}/{name}")
    except mlflow.exceptions.MlflowException as error:
        if not _already_exists(error):
            raise
        return c.get_experiment_by_name(name).experiment_id


def _who() -> str:
    return os.environ.get("AIRFLOW_CTX_DAG_RUN_ID") and f"airflow:{os.environ.get('AIRFLOW_CTX_DAG_ID')}/{os.environ['AIRFLOW_CTX_DAG_RUN_ID']}" or getpass.getuser()


def audit_path(cfg: PipelineConfig | None = None) -> Path:
    return (cfg or get_config()).path("registry/alias_audit.jsonl")


def move_alias(name: str, alias: str, version: str, why: str, cfg: PipelineConfig | None = None) -> str | None:
    """Point `alias` at `version` (one registry call) and append the move to the audit trail; returns the old version."""
    cfg = cfg or get_config()
    c = client(cfg)
    try:
        previous = str(c.get_model_version_by_alias(name, alias).version)
    except Exception:
        previous = None
    if previous == str(version):
        return previous
    c.set_registered_model_alias(name, alias, str(version))
    append_jsonl({"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "who": _who(), "model": name,
                  "alias": alias, "from": previous, "to": str(version), "why": why}, audit_path(cfg))
    log.info("alias %s of %s: %s -> %s (%s)", alias, name, previous, version, why)
    return previous


def alias_history(name: str, alias: str = CHAMPION, cfg: PipelineConfig | None = None) -> list[dict[str, Any]]:
    return [r for r in read_jsonl(audit_path(cfg)) if r["model"] == name and r["alias"] == alias]


def find_run(run_key: str, cfg: PipelineConfig | None = None):
    c = client(cfg)
    runs = c.search_runs([experiment_id(cfg)], filter_string=f"tags.`mlops.run_key` = '{run_key}'",
                         order_by=["attributes.start_time DESC"])
    return runs[0] if runs else None


def version_of_run(name: str, run_id: str, cfg: PipelineConfig | None = None):
    versions = client(cfg).search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return sorted(versions, key=lambda v: int(v.version))[0] if versions else None


@dataclass
class LoadedModel:
    name: str
    version: str
    run_id: str
    base: Any  # ensemble_model.BaseModels
    tags: dict[str, str]

    def predict_proba(self, frame, weights=None):
        return self.base.predict_proba(frame, weights)


def load_verified(name: str, version: str | None = None, alias: str | None = None,
                  cfg: PipelineConfig | None = None) -> LoadedModel:
    """Download a version's artifacts, check every sha256 against the run's tags, then load the base models."""
    from market_mlops.ensemble_model import ARTIFACT_FILES, BaseModels, verify_checksums

    c = client(cfg)
    mv = c.get_model_version_by_alias(name, alias) if alias else c.get_model_version(name, str(version))
    run = c.get_run(mv.run_id)
    expected = {k.removeprefix("sha256."): v for k, v in run.data.tags.items() if k.startswith("sha256.")}
    if not expected:
        raise RegistryError(f"{name} v{mv.version} has no recorded checksums: refusing to load it")
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path="model/artifacts",
                                                     dst_path=tempfile.mkdtemp(prefix="model-")))
    paths = {k: str(local / f) for k, f in ARTIFACT_FILES.items()}
    verify_checksums(paths, expected)
    return LoadedModel(name=name, version=str(mv.version), run_id=mv.run_id, base=BaseModels(paths),
                       tags=dict(mv.tags or {}))


def log_pyfunc_ensemble(model_dir: Path, example) -> None:
    """Log the pyfunc ensemble whose native files and checksums.json are in `model_dir` into the active run."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    from market_mlops.ensemble_model import ARTIFACT_FILES

    checksums = json.loads((model_dir / "checksums.json").read_text())
    mlflow.set_tags({f"sha256.{k}": v for k, v in checksums.items()})
    output = pd.DataFrame({"p_bearish": [0.1], "p_neutral": [0.8], "p_bullish": [0.1], "label": ["NEUTRAL"]})
    info = mlflow.pyfunc.log_model(
        name="model", python_model=str(Path(__file__).with_name("pyfunc_model_code.py")),
        artifacts={**{k: str(model_dir / f) for k, f in ARTIFACT_FILES.items()}, "checksums": str(model_dir / "checksums.json")},
        signature=infer_signature(example, output), input_example=example, pip_requirements=PIP_REQUIREMENTS,
        code_paths=[str(Path(__file__).parent)],
    )
    # MLflow 3 keeps a logged model apart from the run's artifacts: the version must point at `models:/m-<id>`,
    # or `models:/<name>@champion` resolves to an empty run folder.
    mlflow.set_tag(MODEL_URI_TAG, info.model_uri)


def register_version(name: str, run_id: str, tags: dict[str, str], cfg: PipelineConfig | None = None):
    """The version of `run_id` (created once: a retried task finds it instead of registering again)."""
    import mlflow.exceptions

    c = client(cfg)
    existing = version_of_run(name, run_id, cfg)
    if existing is not None:
        return existing
    try:
        c.create_registered_model(name)
    except mlflow.exceptions.MlflowException as error:
        if not _already_exists(error):  # another run of this model created it first: that is fine
            raise
    logged_model = c.get_run(run_id).data.tags.get(MODEL_URI_TAG)  # absent: a model kept in the run's artifacts
    return c.create_model_version(name, logged_model or f"runs:/{run_id}/model", run_id=run_id, tags=tags,
                                  model_id=logged_model.removeprefix("models:/") if logged_model else None)
