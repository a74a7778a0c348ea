"""Why each model forecast was made: its top feature contributions to the called class (issue 48).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forecast_drivers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("symbol", sa.String(40), nullable=False),
        sa.Column("timeframe", sa.String(10), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(250), nullable=False),
        sa.Column("model_version", sa.String(40), nullable=False),
        sa.Column("called", sa.String(10), nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.UniqueConstraint("model_name", "model_version", "ts", name="uq_forecast_drivers_key"),
    )
    op.create_index("ix_forecast_drivers_symbol_timeframe_ts", "forecast_drivers", ["symbol", "timeframe", "ts"])


def downgrade() -> None:
    op.drop_index("ix_forecast_drivers_symbol_timeframe_ts", table_name="forecast_drivers")
    op.drop_table("forecast_drivers")
