"""Dataset versions with DVC in a workspace that needs no git (`core.no_scm`).

The data root is the DVC workspace; `dataset/` is one tracked output whose `.dir` md5 is the data version.
DVC takes a repo lock, so every DVC step here also holds a host-level file lock, and the ingestion DAG runs its
versioning task in an Airflow pool of one slot (`dvc`): concurrent runs queue instead of failing.
A version is materialized for training by checking out its `.dvc` record in a scratch workspace that shares the
cache and remote, so training reads exactly the bytes of that version whatever the live dataset holds now.
The version log lives in the suite's SQL store (`state`), not in the workspace.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from market_mlops.data.storage import directory_lock, file_lock

if TYPE_CHECKING:
    from dvc.repo import Repo

    from market_mlops.config import PipelineConfig

log = logging.getLogger(__name__)

DATASET_DIR = "dataset"
REMOTE_NAME = "store"


class VersioningError(RuntimeError):
    """A DVC step failed; the message says what to check (remote reachable, credentials, space)."""


@dataclass(frozen=True)
class DataVersion:
    md5: str
    files: int
    size: int


def _remote_config(remote_url: str, endpoint_url: str | None) -> dict[str, Any]:
    remote: dict[str, Any] = {"url": remote_url}
    if remote_url.startswith("s3://"):
        if endpoint_url:
            remote["endpointurl"] = endpoint_url
        from market_mlops.data.object_store import s3_credentials

        creds = s3_credentials()  # from an Airflow connection when AWS_* are not in the environment
        remote.update(creds)
    return remote


def open_workspace(root: Path, remote_url: str, endpoint_url: str | None = None, cache_dir: Path | None = None) -> Repo:
    """Init (once) the no-git DVC workspace at `root`, point it at the remote, return a fresh `Repo`."""
    from dvc.repo import Repo

    root.mkdir(parents=True, exist_ok=True)
    if not (root / ".dvc").exists():
        Repo.init(str(root), no_scm=True)
        (root / ".dvcignore").write_text("# temp files of atomic writes are never data\n.tmp-*\n")
    repo = Repo(str(root))
    with repo.config.edit("local") as conf:  # local: credentials may land here, never in a shared file
        conf["remote"][REMOTE_NAME] = _remote_config(remote_url, endpoint_url)
        conf["core"]["remote"] = REMOTE_NAME
        if cache_dir is not None:
            conf["cache"]["dir"] = str(cache_dir)
    repo.close()
    return Repo(str(root))


def read_version(root: Path) -> DataVersion | None:
    dvc_file = root / f"{DATASET_DIR}.dvc"
    if not dvc_file.exists():
        return None
    out = yaml.safe_load(dvc_file.read_text())["outs"][0]
    return DataVersion(md5=out["md5"], files=int(out.get("nfiles", 0)), size=int(out.get("size", 0)))


def commit_and_push(root: Path, remote_url: str, endpoint_url: str | None = None) -> tuple[DataVersion, int]:
    """`dvc add dataset` then `dvc push`; returns the version and how many objects were pushed."""
    with file_lock(root / ".dvc-host.lock"):
        repo = open_workspace(root, remote_url, endpoint_url)
        try:
            with directory_lock(root / DATASET_DIR):  # the snapshot is one state between merges, never half of one
                repo.add(str(root / DATASET_DIR))
                version = read_version(root)
            assert version is not None
            try:
                pushed = repo.push()
            except Exception as exc:
                raise VersioningError(
                    f"dvc push of data version {version.md5} to {remote_url} failed ({exc.__class__.__name__}: "
                    f"{str(exc)[:200]}); the dataset is committed locally, check the remote and retry the task"
                ) from exc
        finally:
            repo.close()
    log.info("data version %s: %d files, %d bytes, %d objects pushed", version.md5, version.files, version.size, pushed)
    return version, int(pushed or 0)


def materialize(root: Path, md5: str, remote_url: str, endpoint_url: str | None = None) -> Path:
    """A read-only checkout of data version `md5` (pulled from the remote if the cache lacks it)."""
    target = root / "checkouts" / md5.removesuffix(".dir")
    done = target / ".complete"
    with file_lock(root / "checkouts" / f"{target.name}.lock"):
        if done.exists():
            return target / DATASET_DIR
        if target.exists():
            shutil.rmtree(target)  # an interrupted earlier checkout
        cache = root / ".dvc" / "cache"
        repo = open_workspace(target, remote_url, endpoint_url, cache_dir=cache)
        (target / f"{DATASET_DIR}.dvc").write_text(yaml.safe_dump({"outs": [{"md5": md5, "path": DATASET_DIR, "hash": "md5"}]}))
        try:
            repo.pull()  # fetches missing objects, then checks out
        except Exception as exc:
            raise VersioningError(f"cannot materialize data version {md5} from {remote_url}: {str(exc)[:200]}") from exc
        finally:
            repo.close()
        done.write_text(dt.datetime.now(dt.UTC).isoformat())
    return target / DATASET_DIR


def log_version(record: Mapping[str, Any], cfg: PipelineConfig | None = None) -> None:
    """Log a data version (interval, md5, rows added per symbol, GX result, run) in the SQL store, where every host
    finds it; the same run logging it again replaces its row."""
    from market_mlops.state import store, tables

    logged = {"logged_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **record}
    store.upsert(tables.data_versions, [{
        "md5": logged["md5"], "run_id": str(logged.get("run_id", "manual")),
        "interval_start": logged.get("interval_start", ""), "interval_end": logged["interval_end"],
        "logged_at": logged["logged_at"], "record": logged}], cfg)


def version_history(cfg: PipelineConfig | None = None) -> list[dict[str, Any]]:
    """Every logged data version, oldest first."""
    from market_mlops.state import store, tables

    return store.records(tables.data_versions, cfg)


def first_version_covering(history: list[dict[str, Any]], moment: dt.datetime) -> dict[str, Any] | None:
    """The first logged version whose interval reached `moment` (one run may have covered many sessions)."""
    cutoff = moment.astimezone(dt.UTC).isoformat()
    eligible = [r for r in history if r.get("interval_end", "") >= cutoff]
    return min(eligible, key=lambda r: (r["interval_end"], r["logged_at"])) if eligible else None


def latest_version_until(history: list[dict[str, Any]], moment: dt.datetime,
                         md5: str | None = None) -> dict[str, Any] | None:
    """The last logged version (of this md5, if given) whose interval ended at or before `moment` (point in time
    for training). One md5 can be logged by several runs: a session that added no rows logs it again later."""
    cutoff = moment.astimezone(dt.UTC).isoformat()
    eligible = [r for r in history if r.get("interval_end", "") <= cutoff and md5 in (None, r["md5"])]
    return max(eligible, key=lambda r: (r["interval_end"], r["logged_at"])) if eligible else None


def ends_before(record: dict[str, Any], floor: dt.datetime) -> bool:
    """Whether a logged version stops before `floor`. A version known only by its Asset event's md5 has no logged
    interval: its event vouched for it."""
    if "interval_end" not in record:
        return False
    return dt.datetime.fromisoformat(record["interval_end"]).astimezone(dt.UTC) < floor


def choose_training_version(history: list[dict[str, Any]], cutoff: dt.datetime, md5: str | None,
                            due: dt.datetime, floor: dt.datetime) -> dict[str, Any] | None:
    """The data version a retrain with this `cutoff` trains on (pure: the version log is an argument).

    The Asset event's md5, else the last version logged by the cutoff. When that one ends before `floor` (the
    session closing at `due`, less the allowed lag), the first version logged later that reaches `due` (a catch-up
    run covers many sessions; training drops bars after the cutoff, so later data in it changes nothing). None when
    nothing was logged; a record that still ends before `floor` when nothing reaches `due` (the caller refuses it).
    """
    record = latest_version_until(history, cutoff, md5)
    if md5 and record is None:  # logged only after the cutoff, or not at all: the Asset event vouches for it
        logged = [r for r in history if r["md5"] == md5]
        record = logged[-1] if logged else {"md5": md5, "gx_result_id": "unknown"}
    if record is None or ends_before(record, floor):
        record = first_version_covering(history, due) or record
    return record
