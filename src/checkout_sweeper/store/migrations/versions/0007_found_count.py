"""A run counts the open sessions it found and says when its listing reached the end, so a
client can draw a percentage.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sweep_runs") as batch:
        batch.add_column(sa.Column("found_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("listing_complete", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("sweep_runs") as batch:
        batch.drop_column("listing_complete")
        batch.drop_column("found_count")
