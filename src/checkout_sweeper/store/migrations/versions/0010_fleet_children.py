"""Fleet sweeps: a run may be a fleet's parent, or one account's child of one.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sweep_runs") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("fleet", sa.Boolean(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("stripe_account", sa.String(64), nullable=True))
        batch.create_index("ix_sweep_runs_parent_id", ["parent_id"])


def downgrade() -> None:
    with op.batch_alter_table("sweep_runs") as batch:
        batch.drop_index("ix_sweep_runs_parent_id")
        batch.drop_column("stripe_account")
        batch.drop_column("fleet")
        batch.drop_column("parent_id")
