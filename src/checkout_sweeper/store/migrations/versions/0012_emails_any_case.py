"""E-mails are unique whatever their case: ``Dev@Example.com`` is ``dev@example.com``.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    clash = op.get_bind().execute(
        sa.text("SELECT lower(email) FROM users GROUP BY lower(email) HAVING count(*) > 1")
    )
    taken = [row[0] for row in clash]
    if taken:  # two users already differ only by case: an operator decides which one stays
        raise RuntimeError(
            "users differ only by the case of their e-mail (remove one of each with "
            f"`checkout-sweeper users remove`): {', '.join(taken)}"
        )
    op.create_index("ix_users_email_lower", "users", [sa.text("lower(email)")], unique=True)


def downgrade() -> None:
    op.drop_index("ix_users_email_lower", table_name="users")
