"""training samples: logged retraining samples, untouched by history retention

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 13:37:59.072482
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "training_samples",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("chat_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("sticker_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("suggestion_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("platform_message_id", sa.String(length=64), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("shown", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chats.id"], name=op.f("fk_training_samples_chat_id_chats"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["sticker_id"],
            ["stickers.id"],
            name=op.f("fk_training_samples_sticker_id_stickers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["suggestion_id"],
            ["suggestions.id"],
            name=op.f("fk_training_samples_suggestion_id_suggestions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_training_samples_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_samples")),
    )
    with op.batch_alter_table("training_samples", schema=None) as batch_op:
        batch_op.create_index(
            "ix_training_samples_chat_id_sticker_id", ["chat_id", "sticker_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_training_samples_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_training_samples_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("training_samples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_training_samples_user_id"))
        batch_op.drop_index(batch_op.f("ix_training_samples_created_at"))
        batch_op.drop_index("ix_training_samples_chat_id_sticker_id")

    op.drop_table("training_samples")
