"""A run keeps who started it after that user is removed: the id and e-mail as they were.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sweep_runs") as batch:
        batch.add_column(sa.Column("removed_user_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("removed_user_email", sa.String(320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sweep_runs") as batch:
        batch.drop_column("removed_user_email")
        batch.drop_column("removed_user_id")
