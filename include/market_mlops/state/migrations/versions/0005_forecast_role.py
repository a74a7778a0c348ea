"""A forecast's role: `champion` (served) or `shadow` (a challenger forecasting beside the champion, never served).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("forecasts") as batch:
        batch.add_column(sa.Column("role", sa.String(10), nullable=False, server_default="champion"))


def downgrade() -> None:
    with op.batch_alter_table("forecasts") as batch:
        batch.drop_column("role")
