"""One row per session per run, so a journal can be imported twice without doubling a row.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("swept_sessions") as batch:
        batch.create_unique_constraint("uq_swept_sessions_run_session", ["run_id", "session_id"])


def downgrade() -> None:
    with op.batch_alter_table("swept_sessions") as batch:
        batch.drop_constraint("uq_swept_sessions_run_session", type_="unique")
