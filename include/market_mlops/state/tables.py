"""The tables of the suite's SQL store. Each has a natural unique key, so every write is an idempotent upsert (a task
retried after a crash writes the same row again), key columns users can query, and the whole record as JSON."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

data_versions = Table(
    "data_versions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("md5", String(64), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("interval_start", String(40), nullable=False),
    Column("interval_end", String(40), nullable=False, index=True),
    Column("logged_at", String(40), nullable=False),
    Column("record", JSON, nullable=False),
    UniqueConstraint("md5", "run_id", "interval_end", name="uq_data_versions_key"),
)

drift_checks = Table(
    "drift_checks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(250), nullable=False),
    Column("model_version", String(40), nullable=False),
    Column("interval_end", String(40), nullable=False),
    Column("band", String(20), nullable=False),
    Column("emergency_retrain_triggered", Boolean, nullable=False),
    Column("record", JSON, nullable=False),
    UniqueConstraint("model", "model_version", "interval_end", name="uq_drift_checks_key"),
)

alias_moves = Table(
    "alias_moves", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(250), nullable=False),
    Column("alias", String(40), nullable=False),
    Column("moved_at", String(40), nullable=False),
    Column("from_version", String(40)),
    Column("to_version", String(40), nullable=False),
    Column("who", String(250), nullable=False),
    Column("why", String(2000), nullable=False),
    UniqueConstraint("model", "alias", "moved_at", "to_version", name="uq_alias_moves_key"),
)

alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("title", String(500), nullable=False),
    Column("created", String(40), nullable=False),
    Column("status", String(20), nullable=False),  # pending | delivered | no_connection
    Column("attempts", Integer, nullable=False),
    Column("record", JSON, nullable=False),
    UniqueConstraint("key", name="uq_alerts_key"),
)

forecasts = Table(
    "forecasts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("symbol", String(40), nullable=False),
    Column("timeframe", String(10), nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),  # the bar scored (UTC)
    Column("horizon", Integer, nullable=False),
    Column("model_name", String(250), nullable=False),
    Column("model_version", String(40), nullable=False),
    Column("p_bearish", Float, nullable=False),
    Column("p_neutral", Float, nullable=False),
    Column("p_bullish", Float, nullable=False),
    Column("predicted", String(10), nullable=False),
    Column("role", String(10), nullable=False, server_default="champion"),  # champion (served) | shadow (never served)
    UniqueConstraint("model_name", "model_version", "ts", name="uq_forecasts_key"),
    Index("ix_forecasts_symbol_timeframe_ts", "symbol", "timeframe", "ts"),
)

dataset_head = Table(  # one row per dataset ("market"): the version every writer starts from
    "dataset_head", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(40), nullable=False),
    Column("md5", String(64), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("moved_at", String(40), nullable=False),
    UniqueConstraint("name", name="uq_dataset_head_key"),
)

consensus = Table(  # one row per symbol and drift-check session: the champions' weighted call and how it fared
    "consensus", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("symbol", String(40), nullable=False),
    Column("interval_end", String(40), nullable=False),
    Column("direction", String(10), nullable=False),
    Column("agreement", Float, nullable=False),
    Column("record", JSON, nullable=False),
    UniqueConstraint("symbol", "interval_end", name="uq_consensus_key"),
)

forecast_drivers = Table(  # one row per model forecast (keyed like forecasts): why it called what it called
    "forecast_drivers", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("symbol", String(40), nullable=False),
    Column("timeframe", String(10), nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("model_name", String(250), nullable=False),
    Column("model_version", String(40), nullable=False),
    Column("called", String(10), nullable=False),
    Column("record", JSON, nullable=False),  # top drivers [[feature, contribution]], bias, margin (ensemble-weighted)
    UniqueConstraint("model_name", "model_version", "ts", name="uq_forecast_drivers_key"),
    Index("ix_forecast_drivers_symbol_timeframe_ts", "symbol", "timeframe", "ts"),
)
