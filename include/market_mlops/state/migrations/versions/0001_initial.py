"""The first tables: data versions, drift checks, alias moves.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("md5", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("interval_start", sa.String(40), nullable=False),
        sa.Column("interval_end", sa.String(40), nullable=False, index=True),
        sa.Column("logged_at", sa.String(40), nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.UniqueConstraint("md5", "run_id", "interval_end", name="uq_data_versions_key"),
    )
    op.create_table(
        "drift_checks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(250), nullable=False),
        sa.Column("model_version", sa.String(40), nullable=False),
        sa.Column("interval_end", sa.String(40), nullable=False),
        sa.Column("band", sa.String(20), nullable=False),
        sa.Column("emergency_retrain_triggered", sa.Boolean, nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.UniqueConstraint("model", "model_version", "interval_end", name="uq_drift_checks_key"),
    )
    op.create_table(
        "alias_moves",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(250), nullable=False),
        sa.Column("alias", sa.String(40), nullable=False),
        sa.Column("moved_at", sa.String(40), nullable=False),
        sa.Column("from_version", sa.String(40)),
        sa.Column("to_version", sa.String(40), nullable=False),
        sa.Column("who", sa.String(250), nullable=False),
        sa.Column("why", sa.String(2000), nullable=False),
        sa.UniqueConstraint("model", "alias", "moved_at", "to_version", name="uq_alias_moves_key"),
    )


def downgrade() -> None:
    for table in ("alias_moves", "drift_checks", "data_versions"):
        op.drop_table(table)
