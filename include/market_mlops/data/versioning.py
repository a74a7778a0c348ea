"""Dataset versions with DVC in a workspace that needs no git (`core.no_scm`).

The data root is the DVC workspace; `dataset/` is one tracked output whose `.dir` md5 is the data version. The
workspace is a cache: the truth is the DVC remote plus the SQL store's `dataset_head` (the version every writer
starts from) and `data_versions` (the log).

One writer at a time on every host (`publish_version`): it holds a lock taken in the SQL store, brings its
workspace to the head (pulling it from the remote when another host moved it, or when a writer died here mid-merge),
merges, `dvc add` + push, and logs the version and moves the head in the transaction that holds the lock. A writer
killed before that commit leaves the head where it was. Readers see the head the same way (`head_dataset`).
A version is materialized for training by checking out its `.dvc` record in a scratch workspace that shares the
cache and remote, so training reads exactly the bytes of that version whatever the live dataset holds now.
Host file locks only keep processes of one host from changing the local cache under each other.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from market_mlops.data.storage import directory_lock, file_lock

if TYPE_CHECKING:
    from dvc.repo import Repo
    from sqlalchemy import Connection

    from market_mlops.config import PipelineConfig

log = logging.getLogger(__name__)

DATASET_DIR = "dataset"
REMOTE_NAME = "store"
HEAD = "market"  # the dataset's row in `dataset_head`
MERGING = ".merge-in-progress"  # in the workspace root while a writer changes it; left behind by a killed writer
T = TypeVar("T")


class VersioningError(RuntimeError):
    """A DVC step failed; the message says what to check (remote reachable, credentials, space)."""

    hint = ('check the DVC remote (reachable, credentials, space); raw data was not changed and Airflow '
            'retries the task')


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
        remote.update({k: v for k, v in creds.items() if k != "endpointurl" or not endpoint_url})
    return remote


def dvc_logs_once() -> None:
    """DVC adds its own stdout and stderr handlers to the `dvc` logger when imported (coloured, warnings on stderr,
    which a task log reads as errors) and still propagates its records: each showed twice, one raw with ANSI codes.
    Its handlers go: records reach the process's logging once, at their own level. "Initialized DVC repository." on
    every new checkout says nothing a user needs."""
    import logging

    import dvc.logger  # noqa: F401 - imported for its handlers, which are removed here

    dvc_log = logging.getLogger("dvc")
    for handler in list(dvc_log.handlers):
        dvc_log.removeHandler(handler)
    logging.getLogger("dvc.repo.init").setLevel(logging.WARNING)


def open_workspace(root: Path, remote_url: str, endpoint_url: str | None = None, cache_dir: Path | None = None) -> Repo:
    """Init (once) the no-git DVC workspace at `root`, point it at the remote, return a fresh `Repo`."""
    from dvc.repo import Repo

    dvc_logs_once()

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
        return _add_and_push(root, remote_url, endpoint_url)


def _add_and_push(root: Path, remote_url: str, endpoint_url: str | None,
                  seconds: dict[str, float] | None = None) -> tuple[DataVersion, int]:
    """`dvc add` + `dvc push`; `seconds` gets how long each took (dvc_add includes opening the workspace)."""
    started = time.perf_counter()
    repo = open_workspace(root, remote_url, endpoint_url)
    try:
        with directory_lock(root / DATASET_DIR):  # the snapshot is one state between merges, never half of one
            repo.add(str(root / DATASET_DIR))
            version = read_version(root)
        added = time.perf_counter()
        if version is None:
            raise VersioningError(f"dvc add of {root / DATASET_DIR} wrote no {DATASET_DIR}.dvc; check the workspace")
        try:
            pushed = repo.push()
        except Exception as exc:
            raise VersioningError(
                f"dvc push of data version {version.md5} to {remote_url} failed ({exc.__class__.__name__}: "
                f"{str(exc)[:200]}); the dataset is committed locally, check the remote and retry the task"
            ) from exc
    finally:
        repo.close()
    if seconds is not None:
        seconds.update({"dvc_add": round(added - started, 3), "push": round(time.perf_counter() - added, 3)})
    log.info("data version %s: %d files, %d bytes, %d objects pushed (%s)", version.md5, version.files, version.size,
             pushed, seconds or "")
    return version, int(pushed or 0)


def head_md5(cfg: PipelineConfig, connection: Connection | None = None) -> str | None:
    """The version every writer starts from: the `dataset_head` row, else (a store from before the head existed)
    the last logged version; None before the first version."""
    from sqlalchemy import select

    from market_mlops.state import store, tables

    head, log_table = tables.dataset_head, tables.data_versions
    queries = (select(head.c.md5).where(head.c.name == HEAD), select(log_table.c.md5).order_by(log_table.c.id.desc()).limit(1))
    for query in queries:
        found = connection.execute(query).scalar() if connection is not None else next(
            iter(store.frame(query, cfg)), {}).get("md5")
        if found:
            return str(found)
    return None


def sync_workspace(root: Path, md5: str | None, remote_url: str, endpoint_url: str | None = None) -> bool:
    """Bring the workspace at `root` to data version `md5` (the head); returns whether it had to change. A workspace
    already at `md5` and not left mid-merge is untouched (one file read); otherwise the version is checked out with
    force from the cache, pulling what the cache lacks from the remote, so a partial merge of a killed writer and
    another host's older copy both give way to the published bytes."""
    merging = root / MERGING
    local = read_version(root)
    if local is not None and local.md5 == md5 and not merging.exists():
        return False
    if md5 is None:  # nothing published yet: an unpublished merge here is dropped, a fresh workspace is kept
        if not merging.exists():
            return False
        shutil.rmtree(root / DATASET_DIR, ignore_errors=True)
        (root / f"{DATASET_DIR}.dvc").unlink(missing_ok=True)
        merging.unlink()
        return True
    repo = open_workspace(root, remote_url, endpoint_url)
    (root / f"{DATASET_DIR}.dvc").write_text(yaml.safe_dump({"outs": [{"md5": md5, "path": DATASET_DIR, "hash": "md5"}]}))
    try:
        repo.pull(force=True)
    except Exception as exc:
        raise VersioningError(f"cannot bring the dataset workspace {root} to head version {md5} from {remote_url} "
                              f"({exc.__class__.__name__}: {str(exc)[:200]}); check the remote and retry") from exc
    finally:
        repo.close()
    merging.unlink(missing_ok=True)
    log.info("dataset workspace %s moved from %s to head %s", root, local.md5 if local else "nothing", md5)
    return True


def head_dataset(cfg: PipelineConfig) -> Path:
    """The local dataset directory at the head version (synced first when another host moved the head): what the
    gate, forecasts and drift read."""
    with file_lock(cfg.data_root / ".dvc-host.lock"):
        sync_workspace(cfg.data_root, head_md5(cfg), cfg.dvc_remote_url, cfg.storage.s3_endpoint_url)
    return cfg.data_root / DATASET_DIR


def publish_version(cfg: PipelineConfig, change: Callable[[Path], T],
                    record_for: Callable[[DataVersion, int, T], dict[str, Any]],
                    run_id: str) -> tuple[dict[str, Any], T]:
    """The one writer: under the store's dataset lock, sync the workspace to the head, `change(dataset_dir)`, dvc
    add + push, then log `record_for(version, objects_pushed, changed)` and move the head in the lock's transaction.
    Returns the logged record and what `change` returned."""
    from market_mlops.state import store, tables

    root = cfg.data_root
    # The host lock spans the commit: a reader on this host waits until the head has moved (or the writer died),
    # so a marker it sees is always a dead writer's, never one whose head is about to be committed.
    with file_lock(root / ".dvc-host.lock"):
        with store.exclusive(f"dataset:{HEAD}", cfg) as connection:
            before = head_md5(cfg, connection)
            sync_workspace(root, before, cfg.dvc_remote_url, cfg.storage.s3_endpoint_url)
            root.mkdir(parents=True, exist_ok=True)
            (root / MERGING).write_text(run_id)
            started = time.perf_counter()
            changed = change(root / DATASET_DIR)
            seconds = {"merge": round(time.perf_counter() - started, 3)}
            version, pushed = _add_and_push(root, cfg.dvc_remote_url, cfg.storage.s3_endpoint_url, seconds)
            record = {"logged_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                      **record_for(version, pushed, changed), "seconds": seconds}
            if version.md5 == before:  # the same bytes again (a folder imported twice): nothing to log or move
                record["unchanged"] = True
            else:
                store.upsert(tables.data_versions, [_version_row(record)], connection=connection)
                store.upsert(tables.dataset_head, [{"name": HEAD, "md5": version.md5, "run_id": run_id,
                                                    "moved_at": record["logged_at"]}], connection=connection)
        (root / MERGING).unlink(missing_ok=True)  # committed; a crash before this leaves the marker, healed on sync
    if record.get("unchanged"):
        log.info("data version %s unchanged: the dataset already held every bar (run %s); no version logged",
                 version.md5, run_id)
    else:
        log.info("data version %s is the head (run %s)", version.md5, run_id)
    return record, changed


def _version_row(logged: Mapping[str, Any]) -> dict[str, Any]:
    return {"md5": logged["md5"], "run_id": str(logged.get("run_id", "manual")),
            "interval_start": logged.get("interval_start", ""), "interval_end": logged["interval_end"],
            "logged_at": logged["logged_at"], "record": dict(logged)}


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
    store.upsert(tables.data_versions, [_version_row(logged)], cfg)


def version_history(cfg: PipelineConfig | None = None) -> list[dict[str, Any]]:
    """Every logged data version retention has not collected, oldest first."""
    from market_mlops.state import store, tables

    return [r for r in store.records(tables.data_versions, cfg) if COLLECTED not in r]


def recorded_splits(cfg: PipelineConfig | None = None) -> set[tuple[str, str, str, float]]:
    """(symbol, timeframe, session date, ratio) of every split a logged data version's batch showed (collected versions
    included: their splits are still in the stored prices)."""
    from market_mlops.state import store, tables

    return {(str(s["symbol"]), str(s["timeframe"]), str(s["ts"])[:10], round(float(s["ratio"]), 4))
            for r in store.records(tables.data_versions, cfg) for s in r.get("splits") or []}


def collected_versions(cfg: PipelineConfig | None = None) -> dict[str, str]:
    """{md5: when} of the data versions retention garbage-collected (their objects are gone from the remote)."""
    from market_mlops.state import store, tables

    return {str(r["md5"]): str(r[COLLECTED]) for r in store.records(tables.data_versions, cfg) if COLLECTED in r}


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


COLLECTED = "collected_at"  # in a data_versions record: retention removed the version's objects


@dataclass(frozen=True)
class Collection:
    """What garbage collection of data versions finds (and, applied, removes)."""

    versions: list[str]  # logged data versions no kept model references (and not the head)
    remote_objects: int  # objects in the DVC remote only they use
    cache_objects: int  # the same in this host's cache


def collect_data_versions(keep: set[str], cfg: PipelineConfig, apply: bool,
                          logged_since: dt.datetime | None = None) -> Collection:
    """Garbage-collect the data versions outside `keep` (the head and versions ending after `logged_since` are
    always kept): count, and with `apply` remove,
    the objects of the DVC remote and this host's cache that no kept version uses, and mark the versions collected
    in the log (a backfill then trains on the first kept version covering its date). Holds the dataset's writer
    lock, so an ingestion's pushed-but-uncommitted objects are never taken for garbage; a kept version whose listing
    cannot be read stops it before anything is removed."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

    from market_mlops.state import store, tables

    root = cfg.data_root
    with file_lock(root / ".dvc-host.lock"), store.exclusive(f"dataset:{HEAD}", cfg) as connection:
        head = head_md5(cfg, connection)
        logged = version_history(cfg)
        # Recent versions stay whatever references them: a scheduled retrain names one by its Asset event, a replay
        # or a retrain may be reading one now.
        recent = {r["md5"] for r in logged if logged_since is not None
                  and r.get("interval_end", "") >= logged_since.astimezone(dt.UTC).isoformat()}
        kept = keep | recent | ({head} if head else set())
        dropped = sorted({r["md5"] for r in logged} - kept)
        if not logged:
            return Collection([], 0, 0)
        repo = open_workspace(root, cfg.dvc_remote_url, cfg.storage.s3_endpoint_url)
        try:
            remote = repo.cloud.get_remote_odb(REMOTE_NAME, "gc")
            used: set[str] = set()
            for md5 in sorted(kept):
                try:
                    tree = Tree.load(remote, HashInfo("md5", md5))
                except Exception as exc:
                    raise VersioningError(f"data version {md5} (kept) cannot be read from {cfg.dvc_remote_url} "
                                          f"({exc.__class__.__name__}): nothing was collected; check the remote") from exc
                used.add(md5)
                used.update(hash_info.value for _, _, hash_info in tree if hash_info is not None and hash_info.value)
            counts = [_collect(odb, used, apply) for odb in (remote, repo.cache.local)]
        finally:
            repo.close()
        if apply and dropped:
            now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            rows = [r for r in logged if r["md5"] in set(dropped)]
            store.upsert(tables.data_versions, [_version_row({**r, COLLECTED: now}) for r in rows],
                         connection=connection)
            for md5 in dropped:
                shutil.rmtree(root / "checkouts" / md5.removesuffix(".dir"), ignore_errors=True)
    log.info("data versions: %d not referenced by a kept model%s; %d remote and %d cache objects %s", len(dropped),
             "" if apply else " (dry run)", counts[0], counts[1], "removed" if apply else "to remove")
    return Collection(dropped, counts[0], counts[1])


def _collect(odb: Any, used: set[str], apply: bool) -> int:
    unused = [oid for oid in odb.all() if oid not in used]
    if apply and unused:
        odb.fs.remove([odb.oid_to_path(oid) for oid in unused])
    return len(unused)
