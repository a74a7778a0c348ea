"""The per-symbol consensus across the champions of its timeframes: one row per symbol and drift-check session.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consensus",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("symbol", sa.String(40), nullable=False),
        sa.Column("interval_end", sa.String(40), nullable=False),
        sa.Column("direction", sa.String(10), nullable=False),
        sa.Column("agreement", sa.Float, nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.UniqueConstraint("symbol", "interval_end", name="uq_consensus_key"),
    )


def downgrade() -> None:
    op.drop_table("consensus")
