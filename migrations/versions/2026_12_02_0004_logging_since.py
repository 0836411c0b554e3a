"""logging boundary: a retraining sample keeps only the dialogue written after its chat turned logging on

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("chats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("logging_after_message", sa.BigInteger(), nullable=True))
    # Chats that opted in before this revision: when is unknown, so nothing written up to now is kept.
    op.execute(
        "UPDATE chats SET logging_after_message = (SELECT COALESCE(MAX(id), 0) FROM messages) "
        "WHERE logging_enabled"
    )


def downgrade() -> None:
    with op.batch_alter_table("chats", schema=None) as batch_op:
        batch_op.drop_column("logging_after_message")
