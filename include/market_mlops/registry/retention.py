"""Archiving model versions nobody can roll back to any more.

Per model the registry keeps the champion, the challenger, the version the champion replaced (a rollback without
`--to-version` goes there) and the newest `retention.keep_versions`; an older version is archived: its model files
are removed from the artifact store (the heavy part: a fleet logs thousands) and it is tagged `archived`. Its run,
metrics and evaluation stay, so its numbers remain readable in MLflow; loading it is refused with the reason.
Files go first and the tag second, so a run cut in between is finished by the next one.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from market_mlops.registry import aliases, store
from market_mlops.registry.versions import ARCHIVED_TAG, suite_models

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from market_mlops.config import PipelineConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelPlan:
    """What retention does to one registered model."""

    name: str
    keep: list[int]
    archive: list[int]
    data_versions: list[str]  # the data versions the kept versions were trained on


def versions_to_archive(versions: list[int], champion: int | None, challenger: int | None, replaced: int | None,
                        keep_last: int) -> list[int]:
    """The versions retention archives (pure): all but the champion, the challenger, the version the champion replaced
    and the newest `keep_last`."""
    kept = set(sorted(versions)[-keep_last:]) | {v for v in (champion, challenger, replaced) if v is not None}
    return sorted(v for v in versions if v not in kept)


def is_archived(version: ModelVersion) -> bool:
    return ARCHIVED_TAG in (version.tags or {})


def plan_model(name: str, cfg: PipelineConfig) -> ModelPlan:
    """The plan for one model from the registry and the alias audit trail (nothing changes)."""
    c = store.client(cfg)
    model = c.get_registered_model(name)
    found = c.search_model_versions(f"name = '{name}'")
    live = {int(v.version): v for v in found if not is_archived(v)}
    champion = (model.aliases or {}).get(aliases.CHAMPION)
    challenger = (model.aliases or {}).get(aliases.CHALLENGER)
    replaced = None if champion is None else aliases.replaced_version(name, str(champion), cfg)
    archive = versions_to_archive(list(live), _int(champion), _int(challenger), _int(replaced),
                                  cfg.retention.keep_versions)
    keep = sorted(set(live) - set(archive))
    data = sorted({_data_version(c, live[v]) for v in keep} - {""})
    return ModelPlan(name=name, keep=keep, archive=archive, data_versions=data)


def _data_version(c: Any, version: ModelVersion) -> str:
    """The data version a version was trained on: its tag, else its run's (a weight refresh tags only the run)."""
    tagged = (version.tags or {}).get("data.version")
    if tagged or not version.run_id:
        return str(tagged or "")
    return str(c.get_run(version.run_id).data.tags.get("data.version", ""))


def _int(value: str | int | None) -> int | None:
    return None if value is None else int(value)


def archive_version(name: str, version: int, cfg: PipelineConfig, when: dt.datetime) -> None:
    """Remove the version's model files from the artifact store and this worker's cache, then tag it archived."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from market_mlops.registry.versions import model_cache_dir

    c = store.client(cfg)
    mv = c.get_model_version(name, str(version))
    for location in _model_file_locations(mv, cfg):
        get_artifact_repository(location, tracking_uri=cfg.mlflow_tracking_uri).delete_artifacts()
    cache = model_cache_dir(cfg)
    if cache is not None and mv.run_id:
        shutil.rmtree(cache / mv.run_id, ignore_errors=True)
    c.set_model_version_tag(name, str(version), ARCHIVED_TAG, when.isoformat(timespec="seconds"))
    log.info("archived %s v%s: model files removed (run %s kept)", name, version, mv.run_id)


def _model_file_locations(mv: ModelVersion, cfg: PipelineConfig) -> list[str]:
    """Where a version's model files are: its logged model's folder (a pyfunc version) or its run's `model/` folder
    (a lean version or a baseline)."""
    c = store.client(cfg)
    source = str(mv.source or "")
    if source.startswith("models:/m-"):
        return [c.get_logged_model(source.removeprefix("models:/")).artifact_location]
    if mv.run_id:
        return [f"{c.get_run(mv.run_id).info.artifact_uri.rstrip('/')}/model"]
    return []


def registered_models(cfg: PipelineConfig) -> list[str]:
    """Every registered model of the suite (one paged search)."""
    return sorted(m.name for m in suite_models(cfg))
