"""Forecasts (one row per model version and bar, what users query) and the dataset head (the version every writer
starts from; moved in the same transaction that logs the version).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forecasts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("symbol", sa.String(40), nullable=False),
        sa.Column("timeframe", sa.String(10), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("horizon", sa.Integer, nullable=False),
        sa.Column("model_name", sa.String(250), nullable=False),
        sa.Column("model_version", sa.String(40), nullable=False),
        sa.Column("p_bearish", sa.Float, nullable=False),
        sa.Column("p_neutral", sa.Float, nullable=False),
        sa.Column("p_bullish", sa.Float, nullable=False),
        sa.Column("predicted", sa.String(10), nullable=False),
        sa.UniqueConstraint("model_name", "model_version", "ts", name="uq_forecasts_key"),
    )
    op.create_index("ix_forecasts_symbol_timeframe_ts", "forecasts", ["symbol", "timeframe", "ts"])
    op.create_table(
        "dataset_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("md5", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("moved_at", sa.String(40), nullable=False),
        sa.UniqueConstraint("name", name="uq_dataset_head_key"),
    )


def downgrade() -> None:
    op.drop_table("dataset_head")
    op.drop_index("ix_forecasts_symbol_timeframe_ts", "forecasts")
    op.drop_table("forecasts")
