"""Moving old rows of the SQL store to Parquet archives (forecasts, drift checks of versions no longer kept).

One file per table and month of the rows' own time (`<archive_url>/<table>/<YYYY-MM>.parquet`), merged with what an
earlier run archived there and deduplicated on the table's natural key, written whole (an object PUT or an atomic
rename); only then are the rows deleted, so a run cut in between archives the same rows again and loses none.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import and_, delete, select

from market_mlops.state import store, tables

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import ColumnElement, Table

    from market_mlops.config import PipelineConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchivedTable:
    """How one table's old rows are found: its model, version and time columns."""

    table: Table
    model: str
    version: str
    time: str


ARCHIVED_TABLES = (ArchivedTable(tables.forecasts, "model_name", "model_version", "ts"),
                   ArchivedTable(tables.drift_checks, "model", "model_version", "interval_end"))


def months_before(moment: dt.datetime, months: int) -> dt.datetime:
    """The same day and time `months` calendar months earlier (the 31st becomes the month's last day)."""
    import pandas as pd

    return (pd.Timestamp(moment) - pd.DateOffset(months=months)).to_pydatetime()


def _old_rows(spec: ArchivedTable, before: dt.datetime, kept: dict[str, set[str]]) -> list[ColumnElement[bool]]:
    """Rows older than `before` of every version but the kept ones (a model not in `kept` keeps nothing), as one
    small condition per model that keeps versions and one for every other model: a single OR over a fleet's models
    passes SQLite's expression depth limit (1,000) and fails."""
    table = spec.table
    time = table.c[spec.time]
    utc = before.astimezone(dt.UTC)
    older = time < (utc if spec.time == "ts" else utc.isoformat())
    keeping = sorted(model for model, versions in kept.items() if versions)
    per_model = [and_(older, table.c[spec.model] == model, table.c[spec.version].not_in(sorted(kept[model])))
                 for model in keeping]
    return [*per_model, and_(older, table.c[spec.model].not_in(keeping)) if keeping else older]


def count_old_rows(spec: ArchivedTable, before: dt.datetime, kept: dict[str, set[str]], cfg: PipelineConfig) -> int:
    from sqlalchemy import func

    return sum(int(store.frame(select(func.count()).select_from(spec.table).where(condition), cfg,
                               what=f" of {spec.table.name}")[0]["count_1"])
               for condition in _old_rows(spec, before, kept))


def archive_old_rows(spec: ArchivedTable, before: dt.datetime, kept: dict[str, set[str]],
                     cfg: PipelineConfig) -> int:
    """Move the rows older than `before` of versions not in `kept` to their monthly Parquet files; returns how many."""
    import pandas as pd

    table = spec.table
    found = pd.DataFrame([row for condition in _old_rows(spec, before, kept)
                          for row in store.frame(select(table).where(condition), cfg, what=f" of {table.name}")])
    if found.empty:
        return 0
    if "record" in found:  # JSON column: text in the archive, as the store's JSON
        found["record"] = [r if isinstance(r, str) else json.dumps(r) for r in found["record"]]
    stamps = pd.to_datetime(found[spec.time], utc=True)
    for month, rows in found.groupby(stamps.dt.strftime("%Y-%m").to_numpy()):
        _merge_into(f"{cfg.archive_url}/{table.name}/{month}.parquet", rows.drop(columns="id"), store.natural_key(table))
    with store.engine(cfg).begin() as connection:
        for start in range(0, len(found), 500):
            ids = [int(i) for i in found["id"].iloc[start:start + 500]]
            connection.execute(delete(table).where(table.c.id.in_(ids)))
    log.info("archived %d %s rows older than %s to %s/%s/", len(found), table.name, before.date(), cfg.archive_url,
             table.name)
    return len(found)


def _merge_into(uri: str, rows: pd.DataFrame, key: list[str]) -> None:
    import pandas as pd

    from market_mlops.data import object_store

    stored = object_store.read_bytes_if_exists(uri)
    earlier = pd.read_parquet(io.BytesIO(stored)) if stored is not None else rows.iloc[:0]
    merged = pd.concat([earlier, rows], ignore_index=True).drop_duplicates(subset=key, keep="last")
    buffer = io.BytesIO()
    merged.to_parquet(buffer, index=False)
    object_store.write_bytes(uri, buffer.getvalue())


def read_archive(table_name: str, cfg: PipelineConfig) -> pd.DataFrame:
    """Every archived row of a table (what the archive holds, for a user or a test)."""
    import pandas as pd

    from market_mlops.data import object_store

    files = [u for u in object_store.list_under(f"{cfg.archive_url}/{table_name}") if u.endswith(".parquet")]
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(io.BytesIO(object_store.read_bytes(u))) for u in files], ignore_index=True)
