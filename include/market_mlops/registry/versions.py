"""Registered model versions: logging the pyfunc ensemble, registering it once, loading it verified.

Registration is idempotent: a version is found by its run id, so a retried task never creates a second version.
Loading goes through the version's `models:/<name>/<version>` URI (never the `runs:/` fallback, which pages through
every logged model of the experiment), checks the pipeline's signature (`signing`) and every file's sha256 against
the run's tags, and keeps nothing on disk.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from market_mlops.config import PipelineConfig
from market_mlops.registry import signing, store
from market_mlops.registry.aliases import CHAMPION

if TYPE_CHECKING:
    from collections.abc import Iterator
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

    from market_mlops.model.ensemble_model import BaselineModel, BaseModels

log = logging.getLogger(__name__)

MODEL_URI_TAG = "mlops.model_uri"
KIND_TAG = "kind"  # "model" (the ensemble) or "baseline" (a naive rule that no model has beaten yet)
FIT_END_TAG = "fit.end"  # the last bar the served models learned
WEIGHTS_FIT_END_TAG = "weights.fit_end"  # a weight refresh: the last bar its ensemble weights were fitted on
EVALUATION_END_TAG = "evaluation.end"  # the last bar of the holdout the gate decided on
ARCHIVED_TAG = "archived"  # when retention archived the version (ISO UTC); its model files are gone
PIP_REQUIREMENTS = ["mlflow==3.17.2", "scikit-learn==1.9.1", "xgboost==3.2.0", "lightgbm==4.7.0", "skops",
                    "pandas==3.1.1", "numpy", "scipy"]
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class LoadedModel:
    name: str
    version: str
    run_id: str
    base: BaseModels | BaselineModel
    tags: dict[str, str] = field(default_factory=dict)
    run: Run | None = None  # its training run as read to verify it (tags, metrics): callers need not read it again

    @property
    def features(self) -> list[str]:
        return self.base.features

    @property
    def is_baseline(self) -> bool:
        return self.base.meta.get("kind") == "baseline"

    def predict_proba(self, frame: pd.DataFrame, weights: list[float] | np.ndarray | None = None) -> np.ndarray:
        return self.base.predict_proba(frame, weights)


def version_of_run(name: str, run_id: str, cfg: PipelineConfig | None = None) -> ModelVersion | None:
    versions = store.client(cfg).search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return sorted(versions, key=lambda v: int(v.version))[0] if versions else None


def download_model_files(name: str, version: str, dst: Path) -> Path:
    """The version's native model files (and checksums.json) under `dst`; returns their folder."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(dst)))
    return local / "artifacts"


@dataclass
class VersionReads:
    """What loading a version reads from the registry before its files: the version (tags, signature) and its run
    (checksums, metrics). A drift shard reads them for all its champions at once (`prefetch_versions`)."""

    version: ModelVersion
    run: Run


def read_version(name: str, version: str | None = None, alias: str | None = None,
                 cfg: PipelineConfig | None = None) -> VersionReads:
    c = store.client(cfg)
    mv = _loadable(name, c.get_model_version_by_alias(name, alias) if alias else c.get_model_version(name, str(version)))
    return VersionReads(mv, c.get_run(str(mv.run_id)))


def _loadable(name: str, mv: ModelVersion) -> ModelVersion:
    if not mv.run_id:
        raise store.RegistryError(f"{name} v{mv.version} names no training run: refusing to load it")
    if ARCHIVED_TAG in (mv.tags or {}):
        raise store.RegistryError(f"{name} v{mv.version} was archived by retention on {mv.tags[ARCHIVED_TAG][:10]}: "
                                  "its model files are removed; use a kept version (market-mlops models lists them)")
    return mv


def load_verified(name: str, version: str | None = None, alias: str | None = None,
                  cfg: PipelineConfig | None = None, reads: VersionReads | None = None) -> LoadedModel:
    """A version's model, its signature and every file's sha256 checked against the run's tags before anything is
    deserialized. The files come from this worker's model cache when it holds them (the checksums are computed again
    on every load: a cache is never trusted), else from the store, then kept in the cache. `reads`: the version and
    run as the caller read them (`prefetch_versions`), else read here."""
    from market_mlops.model.ensemble_model import load_models

    reads = reads or read_version(name, version, alias, cfg)
    mv, run = reads.version, reads.run
    run_id = run.info.run_id
    expected = _expected_checksums(name, mv, run)
    signing.verify(signing.configured_keys(), name, str(mv.version), run_id, expected, dict(mv.tags or {}))
    cached = _cached_files(cfg, run_id, expected)
    if cached is not None:
        base = load_models(cached)
    else:
        with tempfile.TemporaryDirectory(prefix="model-") as tmp:
            base = load_models(_download_verified(name, str(mv.version), expected, Path(tmp), cfg, run_id))
    return LoadedModel(name=name, version=str(mv.version), run_id=run_id, base=base, tags=dict(mv.tags or {}),
                       run=run)


def _expected_checksums(name: str, mv: ModelVersion, run: Run) -> dict[str, str]:
    expected = {k.removeprefix("sha256."): v for k, v in run.data.tags.items() if k.startswith("sha256.")}
    if not expected:
        raise store.RegistryError(f"{name} v{mv.version} has no recorded checksums: refusing to load it")
    return expected


def _download_verified(name: str, version: str, expected: dict[str, str], tmp: Path, cfg: PipelineConfig | None,
                       run_id: str) -> dict[str, str]:
    """The version's files downloaded under `tmp`, their checksums checked, and kept in the cache."""
    from market_mlops.model.ensemble_model import artifact_files, verify_checksums

    local = download_model_files(name, version, tmp)
    paths = {k: str(local / f) for k, f in artifact_files(local).items()}
    verify_checksums(paths, expected)
    _keep_files(cfg, run_id, paths)
    return paths


def prefetch_versions(wanted: list[tuple[str, str]], run_files: tuple[str, ...], cfg: PipelineConfig | None = None,
                      threads: int = 8) -> dict[tuple[str, str], VersionReads | Exception]:
    """{(name, version): its registry reads, or the error reading it} for a shard, side by side (each read is a
    round trip to the tracking server): the versions and their runs, then their model files into this worker's cache
    (checked against the run's checksums) and their runs' `run_files` (one missing is left to its reader). Nothing is
    trusted from here: `load_verified` checks the signature and the cached files again."""
    from concurrent.futures import Future, ThreadPoolExecutor

    client = store.client(cfg)
    downloaded: list[str] = []

    def loadable(key: tuple[str, str], mv: ModelVersion) -> ModelVersion | Exception:
        try:
            return _loadable(key[0], mv)
        except store.RegistryError as error:  # this version's failure is its own, raised where it is loaded
            return error

    def read(key: tuple[str, str]) -> ModelVersion | Exception:
        try:
            mv = client.get_model_version(*key)
        except Exception as error:  # noqa: BLE001 - as above
            return error
        return loadable(key, mv)

    def with_run(mv: ModelVersion | Exception, runs: dict[str, Run]) -> VersionReads | Exception:
        if isinstance(mv, Exception):
            return mv
        try:
            return VersionReads(mv, runs.get(str(mv.run_id)) or client.get_run(str(mv.run_id)))
        except Exception as error:  # noqa: BLE001 - as above
            return error

    def cache_model(key: tuple[str, str], reads: VersionReads) -> None:
        run_id = reads.run.info.run_id
        expected = _expected_checksums(key[0], reads.version, reads.run)
        if not _in_cache(cfg, run_id, expected):  # present: hashed once, by the load that uses it
            downloaded.append(run_id)
            with tempfile.TemporaryDirectory(prefix="model-") as tmp:
                _download_verified(*key, expected, Path(tmp), cfg, run_id)

    def cache_run_file(run_id: str, path: str) -> None:
        try:
            run_file(run_id, path, cfg)
        except Exception:  # noqa: BLE001 - an older run without the file: its reader says what that means
            log.debug("run %s has no %s", run_id, path)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(wanted)))) as pool:
        searched = _search_versions(wanted, client, pool)
        missing = [key for key in wanted if key not in searched]  # a failed search reads each on its own
        read_alone = dict(zip(missing, pool.map(read, missing), strict=True))
        read_versions = {key: read_alone[key] if key in read_alone else loadable(key, searched[key]) for key in wanted}
        read_at = time.perf_counter()
        # Their runs in one search of the suite's experiment (a run elsewhere is read on its own).
        run_ids = sorted({str(mv.run_id) for mv in read_versions.values() if not isinstance(mv, Exception)})
        runs = {r.info.run_id: r for r in client.search_runs(
            [store.experiment_id(cfg)], filter_string="attributes.run_id IN ({})".format(
                ", ".join(f"'{r}'" for r in run_ids)), max_results=max(len(run_ids), 1))} if run_ids else {}
        found = dict(zip(wanted, pool.map(lambda mv: with_run(mv, runs), read_versions.values()), strict=True))
        runs_at = time.perf_counter()
        if model_cache_dir(cfg) is None:  # nothing to keep files in: each is read where it is needed
            return found
        models: dict[tuple[str, str], Future[None]] = {}
        for key, reads in found.items():
            if isinstance(reads, VersionReads):
                models[key] = pool.submit(cache_model, key, reads)
                for path in run_files:
                    pool.submit(cache_run_file, reads.run.info.run_id, path)
        for key, job in models.items():  # the pool's exit waits for the run files
            error = job.exception()
            if isinstance(error, Exception):
                found[key] = error
    log.info("prefetch of %d versions: registry %.3f s, their runs %.3f s, files into the cache %.3f s (%d models "
             "downloaded)", len(wanted), read_at - started, runs_at - read_at, time.perf_counter() - runs_at,
             len(downloaded))
    return found


VERSION_SEARCH_LIMIT = 200  # versions a shard's search may return (its models' versions between its lowest and highest)


def _search_versions(wanted: list[tuple[str, str]], client: MlflowClient,
                     pool: ThreadPoolExecutor) -> dict[tuple[str, str], ModelVersion]:
    """{(name, version): version} of a shard's versions in two searches side by side, not a read each (measured
    through the authenticated server, 4 versions: 0.04 s against 0.10 s): the versions of its models between its
    lowest and highest version, and its registered models, whose aliases a version search leaves out. Empty when
    a search fails or returns too much: the caller reads each version on its own."""
    names = sorted({name for name, _v in wanted})
    if not wanted or any("'" in name for name in names):
        return {}
    listed = ", ".join(f"'{name}'" for name in names)
    numbers = [int(v) for _n, v in wanted]
    try:
        found = pool.submit(client.search_model_versions, f"name IN ({listed}) AND version_number >= {min(numbers)} "
                            f"AND version_number <= {max(numbers)}", max_results=VERSION_SEARCH_LIMIT)
        models = client.search_registered_models(f"name IN ({listed})", max_results=max(len(names), 1))
        versions = found.result()
    except Exception as error:  # noqa: BLE001 - each version is read on its own, and fails there with its own error
        log.info("shard version search failed (%s): reading each version", str(error)[:200])
        return {}
    if versions.token:
        return {}
    aliases = {m.name: m.aliases or {} for m in models}
    out = {}
    for mv in versions:
        mv.aliases = [a for a, v in aliases.get(mv.name, {}).items() if str(v) == str(mv.version)]
        out[(mv.name, str(mv.version))] = mv
    return {key: out[key] for key in wanted if key in out}


def model_cache_dir(cfg: PipelineConfig | None) -> Path | None:
    """This worker's cache of verified model files (`storage.model_cache`), or None when it is off."""
    from market_mlops.config import get_config

    cfg = cfg or get_config()
    return cfg.path(cfg.storage.model_cache) if cfg.storage.model_cache else None


def _cached_files(cfg: PipelineConfig | None, run_id: str, expected: dict[str, str]) -> dict[str, str] | None:
    """The cached files of a run when every one has its recorded sha256 (checked now, on this load); else None (a
    missing, partial or altered entry is loaded from the store again)."""
    from market_mlops.model.ensemble_model import ModelIntegrityError, artifact_files, verify_checksums

    root = model_cache_dir(cfg)
    if root is None or not _in_cache(cfg, run_id, expected):
        return None
    folder = root / run_id
    paths = {k: str(folder / f) for k, f in artifact_files(folder).items()}
    try:
        verify_checksums(paths, expected)
    except ModelIntegrityError:
        import shutil

        log.warning("model cache entry %s does not match its checksums: loading from the store", folder)
        shutil.rmtree(folder, ignore_errors=True)  # cached again once the store's files verify
        return None
    return paths


def _in_cache(cfg: PipelineConfig | None, run_id: str, expected: dict[str, str]) -> bool:
    """Whether the cache holds a file for every checksum of a run (not whether they match: `_cached_files` checks)."""
    from market_mlops.model.ensemble_model import artifact_files

    root = model_cache_dir(cfg)
    folder = root / run_id if root is not None else None
    if folder is None or not folder.is_dir():
        return False
    files = artifact_files(folder)
    return not set(expected) - set(files) and all((folder / f).exists() for f in files.values())


def _keep_files(cfg: PipelineConfig | None, run_id: str, paths: dict[str, str]) -> None:
    """Copy verified files into the cache (written aside, then renamed: a reader never sees half an entry)."""
    import shutil

    root = model_cache_dir(cfg)
    if root is None:
        return
    target = root / run_id
    if target.is_dir():
        return
    staging = Path(tempfile.mkdtemp(prefix=f".{run_id}-", dir=_made(root)))
    for path in paths.values():
        shutil.copy2(path, staging / Path(path).name)
    try:
        staging.rename(target)
    except OSError:  # another task cached it first
        shutil.rmtree(staging, ignore_errors=True)


def run_file(run_id: str, artifact_path: str, cfg: PipelineConfig | None = None) -> Path:
    """A file a run logged (its drift reference, its holdout metrics), from this worker's cache beside the model
    cache when it is there (a run's files never change once logged), else downloaded and kept. Raises as MLflow does
    when the run has no such file."""
    import shutil

    import mlflow

    root = model_cache_dir(cfg)
    if root is None:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path))
    target = root.parent / "run-files" / run_id / artifact_path
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(prefix="run-file-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=tmp))
        _made(target.parent)
        staging = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")  # tasks, threads
        shutil.copy2(local, staging)
        staging.replace(target)  # whole or absent
    return target


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


SERVING_MODULES = ("__init__.py", "model/__init__.py", "model/ensemble.py", "model/ensemble_model.py",
                   "model/baselines.py", "model/calibration.py")


def log_pyfunc_ensemble(model_dir: Path, example: pd.DataFrame, tag_run: bool = True) -> str:
    """Log the pyfunc ensemble whose native files and checksums.json are in `model_dir` into the active run; returns
    the logged model's id. `tag_run=False`: the caller sets `model_file_tags` with its own batch (one round trip less).

    The model carries only the modules it needs to load (`SERVING_MODULES`), not the whole suite: a fleet logs
    thousands of versions. Its signature is inferred from `example`; no input example is stored: the run's
    `reference/reference_features.parquet` already holds the rows it learned last (an input example would store some
    of them twice), and MLflow would load every new version once more to check the example serves, 0.2 s a version
    for the same checked-in code every time (tests/model/test_training.py serves a version through pyfunc)."""
    import shutil
    import warnings

    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    from market_mlops.model.ensemble_model import artifact_files

    output = pd.DataFrame({"p_bearish": [0.1], "p_neutral": [0.8], "p_bullish": [0.1], "label": ["NEUTRAL"]})
    with tempfile.TemporaryDirectory(prefix="serving-code-") as tmp, warnings.catch_warnings():
        # No input example on purpose (see above): MLflow warns about it on every version, in colour.
        warnings.filterwarnings("ignore", message=".*An input example was not provided", category=UserWarning)
        code = Path(tmp) / PACKAGE_ROOT.name
        for module in SERVING_MODULES:
            (code / module).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PACKAGE_ROOT / module, code / module)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(PACKAGE_ROOT / "model" / "pyfunc_model_code.py"),
            artifacts={**{k: str(model_dir / f) for k, f in artifact_files(model_dir).items()},
                       "checksums": str(model_dir / "checksums.json")},
            signature=infer_signature(example, output), pip_requirements=PIP_REQUIREMENTS,
            code_paths=[str(code)],
        )
    if tag_run:
        mlflow.set_tags(model_file_tags(json.loads((model_dir / "checksums.json").read_text()), str(info.model_id)))
    return str(info.model_id)


def model_file_tags(checksums: dict[str, str], model_id: str | None = None) -> dict[str, str]:
    """The run's tags of its model files: every file's sha256 and, for a logged pyfunc model, its URI (MLflow 3 keeps
    a logged model apart from the run's artifacts: the version must point at `models:/m-<id>`, or
    `models:/<name>@champion` resolves to an empty run folder)."""
    uri = {MODEL_URI_TAG: f"models:/{model_id}"} if model_id is not None else {}
    return {**{f"sha256.{k}": v for k, v in checksums.items()}, **uri}


LEAN_MODEL_PATH = "model/artifacts"  # a lean version's native files in its run: where a pyfunc keeps them


def log_lean_model(model_dir: Path) -> None:
    """Log the native model files of `model_dir` as the run's `model/artifacts` (the layout a pyfunc model has, so
    a version of either kind loads the same way) and their checksums as tags; no pyfunc wrapper."""
    import mlflow

    checksums = json.loads((model_dir / "checksums.json").read_text())
    mlflow.log_artifacts(str(model_dir), LEAN_MODEL_PATH)
    mlflow.set_tags(model_file_tags(checksums))


def log_model_files(model_dir: Path, example: pd.DataFrame, artifacts: str) -> str | None:
    """The version's model as `training.model_artifacts` says: a pyfunc model (returns its id) or lean files."""
    if artifacts == "full":
        return log_pyfunc_ensemble(model_dir, example)
    log_lean_model(model_dir)
    return None


def register_version(name: str, run_id: str, tags: dict[str, str], cfg: PipelineConfig | None = None) -> ModelVersion:
    """The version of `run_id` (created once: a retried task finds it instead of registering again)."""
    existing = version_of_run(name, run_id, cfg)
    return existing if existing is not None else create_version(name, run_id, tags, cfg)


def create_version(name: str, run_id: str, tags: dict[str, str], cfg: PipelineConfig | None = None,
                   unsigned_tags: dict[str, str] | None = None) -> ModelVersion:
    """A new version of `run_id`'s logged model (the caller checked none exists yet), signed over its lineage `tags`;
    `unsigned_tags` (the gate's numbers) are set in the same call."""
    import mlflow.exceptions

    c = store.client(cfg)
    try:
        c.create_registered_model(name)
    except mlflow.exceptions.MlflowException as error:
        if not store.already_exists(error):  # another run of this model created it first: that is fine
            raise
    run_tags = c.get_run(run_id).data.tags
    logged_model = run_tags.get(MODEL_URI_TAG)  # absent: a model kept in the run's artifacts
    checksums = {k.removeprefix("sha256."): v for k, v in run_tags.items() if k.startswith("sha256.")}
    tags = {**(unsigned_tags or {}), **tags, **signing.signature_tags(signing.configured_keys(), name, run_id, checksums,
                                                                       tags)}
    return c.create_model_version(name, logged_model or f"runs:/{run_id}/model", run_id=run_id, tags=tags,
                                  model_id=logged_model.removeprefix("models:/") if logged_model else None)


def suite_models(cfg: PipelineConfig | None = None) -> Iterator[RegisteredModel]:
    """The suite's registered models, page by page (one search a page, not a call per model). An unreachable
    server raises (never "no models")."""
    c = store.client(cfg)
    token = None
    while True:
        page = c.search_registered_models(filter_string="name LIKE '%-direction'", max_results=500, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def champion_versions(keys: list[tuple[str, str, int]],
                      cfg: PipelineConfig | None = None) -> dict[tuple[str, str, int], str]:
    """{(symbol, timeframe, horizon): champion version} for the models that have a champion: one registry search
    for the whole universe, not a call per model. An unreachable server raises (never "no champions")."""
    wanted = {store.model_name(s, t, h, cfg): (s, t, h) for s, t, h in keys}
    found: dict[tuple[str, str, int], str] = {}
    for model in suite_models(cfg):
        version = (model.aliases or {}).get(CHAMPION)
        if model.name in wanted and version is not None:
            found[wanted[model.name]] = str(version)
    return {key: found[key] for key in keys if key in found}
