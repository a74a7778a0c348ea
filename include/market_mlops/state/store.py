"""The suite's SQL store: what it remembers (data versions, drift checks, alias moves) in one database that every
host reaches. SQLite in MLOPS_HOME on the embedded stack, PostgreSQL in production (`storage.state_url`). The schema
is Alembic's (`migrations/`), brought to head on first use by each process.

A server that is down raises `StateStoreError` (one line): the task fails and Airflow retries it; it never reads
as "no history".
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import threading
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Select, Table, UniqueConstraint, create_engine, select, text
from sqlalchemy.exc import OperationalError

from market_mlops.config import PipelineConfig, get_config
from market_mlops.state import tables

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")


class StateStoreError(RuntimeError):
    """The SQL store cannot be reached or written."""

    hint = ('check that the SQL store (storage.state_url / MLOPS__STORAGE__STATE_URL) answers; Airflow '
            'retries the task')


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def finite(value: Any) -> Any:
    """`value` with every NaN or infinity, however deeply nested, as None (strict JSON: PostgreSQL, XCom)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """JSON as every database takes it: a NaN (no forecast resolved yet) is null. PostgreSQL refuses the NaN token
    that SQLite stores without a word, so without this a record that passes locally fails in production."""
    return json.dumps(finite(value), default=str, allow_nan=False)


@functools.cache
def _engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # writers from several processes wait their turn
        engine = create_engine(url, connect_args={"timeout": 60}, json_serializer=json_text)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2, json_serializer=json_text)
    try:
        _upgrade(engine)
    except OperationalError as exc:
        raise StateStoreError(f"state store {_redacted(url)} unreachable: {str(exc.orig)[:200]}") from None
    return engine


MIGRATION_LOCK = 0x6D6C6F7073  # a PostgreSQL advisory lock key: one process migrates at a time


def _upgrade(engine: Engine, attempts: int = 5) -> None:
    """Alembic `upgrade head` on this engine (idempotent; a no-op at head). Processes starting together on several
    hosts take turns: an advisory lock on PostgreSQL; on SQLite, a process that lost the race sees the other's
    tables on its next attempt."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if _at_head(engine, config):  # the common case, every task process: no migration context, none of its INFO lines
        return
    for attempt in range(attempts):
        try:
            with engine.begin() as connection:
                if engine.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            return
        except (IntegrityError, ProgrammingError, OperationalError) as exc:
            if attempt == attempts - 1 or "already exists" not in str(exc).lower():
                raise
            time.sleep(0.2 * (attempt + 1))


def _at_head(engine: Engine, config: Any) -> bool:
    """Whether the store's recorded revision is the newest migration (read with plain SQL: alembic's migration
    context logs two INFO lines into every task that opens it)."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import text
    from sqlalchemy.exc import DatabaseError

    head = ScriptDirectory.from_config(config).get_current_head()
    try:
        with engine.connect() as connection:
            current = connection.execute(text("SELECT version_num FROM mlops_alembic_version")).scalar()
    except DatabaseError:  # no version table yet: a new store
        return False
    return current == head


def describe(cfg: PipelineConfig | None = None) -> str:
    """The store's URL without its password (what logs and summaries print)."""
    return _redacted((cfg or get_config()).state_url)


_ENGINES = threading.Lock()  # alembic's migration context is process-global: one thread builds an engine at a time


def engine(cfg: PipelineConfig | None = None) -> Engine:
    """The store's engine, migrated to head once per process (two threads of the api-server asking at start-up used
    to run alembic at once: `KeyError: 'config'`)."""
    with _ENGINES:
        return _engine((cfg or get_config()).state_url)


def natural_key(table: Table) -> list[str]:
    """The columns of the table's unique constraint: what makes a row the same row."""
    constraint = next(c for c in table.constraints if isinstance(c, UniqueConstraint))
    return [c.name for c in constraint.columns]


def upsert(table: Table, rows: Sequence[Mapping[str, Any]], cfg: PipelineConfig | None = None,
           connection: Connection | None = None, keep: tuple[str, ...] = ()) -> None:
    """Insert rows; a row whose natural key exists replaces its values (a retried write is the same write), except
    the `keep` columns, which stay as first written. With `connection`, inside that transaction (the caller
    commits)."""
    if not rows:
        return
    eng = connection.engine if connection is not None else engine(cfg)
    key_columns = natural_key(table)
    if eng.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
    statement = dialect_insert(table)
    updates = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in (*key_columns, "id", *keep)}
    statement = statement.on_conflict_do_update(index_elements=key_columns, set_=updates)
    try:
        if connection is not None:
            connection.execute(statement, [dict(r) for r in rows])
            return
        with eng.begin() as own:
            own.execute(statement, [dict(r) for r in rows])
    except OperationalError as exc:
        raise StateStoreError(f"state store write to {table.name} failed: {str(exc.orig)[:200]}") from None


def rows(table: Table, cfg: PipelineConfig | None = None, order_by: str = "id",
         **equals: Any) -> list[dict[str, Any]]:
    """The rows of `table` whose columns equal `equals`, in `order_by` order."""
    query = select(table).order_by(table.c[order_by], table.c.id)
    for column, value in equals.items():
        query = query.where(table.c[column] == value)
    return frame(query, cfg, what=f" of {table.name}")


def frame(query: Select[Any], cfg: PipelineConfig | None = None, what: str = "") -> list[dict[str, Any]]:
    """The rows of an arbitrary select (a range of forecasts, a fleet's latest checks)."""
    try:
        with engine(cfg).connect() as connection:
            return [dict(r._mapping) for r in connection.execute(query)]
    except OperationalError as exc:
        raise StateStoreError(f"state store read{what} failed: {str(exc.orig)[:200]}") from None


@contextlib.contextmanager
def exclusive(name: str, cfg: PipelineConfig | None = None) -> Iterator[Connection]:
    """A transaction that holds the store-wide lock `name` until it commits: one holder at a time on every host.
    PostgreSQL: a transaction-scoped advisory lock (released by commit, rollback or a dead connection, so a worker
    killed with SIGKILL frees it). SQLite (one host): the database's write lock, taken by a first write."""
    eng = engine(cfg)
    try:
        with eng.begin() as connection:
            if eng.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(name.encode())})
            else:
                # any write statement, even one matching no row, begins the write transaction
                connection.execute(text("UPDATE dataset_head SET name = name WHERE name = :n"), {"n": name})
            yield connection
    except OperationalError as exc:
        raise StateStoreError(f"state store lock {name!r} failed: {str(exc.orig)[:200]}") from None


def records(table: Table, cfg: PipelineConfig | None = None, order_by: str = "id", **equals: Any) -> list[dict[str, Any]]:
    """The JSON records of the matching rows (what the suite logged, as it logged it)."""
    out = []
    for row in rows(table, cfg, order_by, **equals):
        record = row["record"]
        out.append(json.loads(record) if isinstance(record, str) else dict(record))
    return out


__all__ = ["StateStoreError", "engine", "exclusive", "frame", "records", "rows", "tables", "upsert"]
