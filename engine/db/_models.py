"""Database models. The schema changes only through Alembic revisions in ``migrations/``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Autoincrementing ids: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
Id = BigInteger().with_variant(Integer, "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {datetime: DateTime(timezone=True)}


class Chat(Base):
    __tablename__ = "chats"
    __table_args__ = (UniqueConstraint("platform", "platform_chat_id", name="uq_chats_platform_chat"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    platform_chat_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(256))
    # Keeping dialogue for retraining is off until a chat admin turns it on.
    logging_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # The newest messages.id when logging was turned on: only later messages may go into a training sample.
    logging_after_message: Mapped[int | None] = mapped_column(BigInteger)
    # Bumped whenever the chat's enabled packs change: lets every worker invalidate its sticker matrix.
    packs_version: Mapped[int] = mapped_column(Integer, default=0)
    # When /sticker last answered here (Unix seconds): the per-chat cooldown, shared by every worker.
    last_sticker_at: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("platform", "platform_user_id", name="uq_users_platform_user"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    platform_user_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Pack(Base):
    __tablename__ = "packs"
    __table_args__ = (UniqueConstraint("platform", "name", name="uq_packs_platform_name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # "local" for packs imported from files, else the platform the set lives on.
    platform: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128))
    title: Mapped[str | None] = mapped_column(String(256))
    source: Mapped[str | None] = mapped_column(Text)
    # importing → ready; an interrupted import stays "importing" and can be resumed.
    status: Mapped[str] = mapped_column(String(16), default="ready")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    stickers: Mapped[list[Sticker]] = relationship(
        back_populates="pack", cascade="all, delete-orphan", passive_deletes=True
    )


class Sticker(Base):
    __tablename__ = "stickers"
    __table_args__ = (
        UniqueConstraint("pack_id", "platform_sticker_id", name="uq_stickers_pack_platform_sticker"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    pack_id: Mapped[int] = mapped_column(ForeignKey("packs.id", ondelete="CASCADE"), index=True)
    # The platform's *stable* id (Telegram file_unique_id, Discord sticker id, file name for local packs).
    platform_sticker_id: Mapped[str] = mapped_column(String(128))
    # What a platform needs to send it again (Telegram file_id changes over time: refreshed on re-import).
    platform_file_id: Mapped[str | None] = mapped_column(String(256))
    emoji: Mapped[str | None] = mapped_column(String(64))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    caption: Mapped[str | None] = mapped_column(Text)
    # Content-addressed still (PNG) in the media store: media/<sha[:2]>/<sha>.png
    media_sha256: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # static | animated | video
    source_format: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    pack: Mapped[Pack] = relationship(back_populates="stickers")


class ChatPack(Base):
    __tablename__ = "chat_packs"

    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True)
    pack_id: Mapped[int] = mapped_column(ForeignKey("packs.id", ondelete="CASCADE"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    added_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_chat_id_id", "chat_id", "id"),
        Index("ix_messages_chat_platform_message", "chat_id", "platform_message_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    platform_message_id: Mapped[str | None] = mapped_column(String(64))
    reply_to: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text, default="")
    # Set when the message *is* a sticker (captured for retraining where logging is on).
    sticker_id: Mapped[int | None] = mapped_column(ForeignKey("stickers.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    edited_at: Mapped[datetime | None] = mapped_column()


class StickerEmbedding(Base):
    __tablename__ = "sticker_embeddings"

    sticker_id: Mapped[int] = mapped_column(ForeignKey("stickers.id", ondelete="CASCADE"), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(128), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Suggestion(Base):
    __tablename__ = "suggestions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    model_version: Mapped[str] = mapped_column(String(128))
    # The newest message the ranking saw: the context can be rebuilt for retraining.
    last_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    items: Mapped[list[SuggestionItem]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="SuggestionItem.rank"
    )


class SuggestionItem(Base):
    __tablename__ = "suggestion_items"

    suggestion_id: Mapped[int] = mapped_column(
        ForeignKey("suggestions.id", ondelete="CASCADE"), primary_key=True
    )
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    sticker_id: Mapped[int] = mapped_column(ForeignKey("stickers.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)


class Feedback(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    suggestion_id: Mapped[int | None] = mapped_column(
        ForeignKey("suggestions.id", ondelete="CASCADE"), index=True
    )
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    sticker_id: Mapped[int] = mapped_column(ForeignKey("stickers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # picked | sent | inline
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainingSample(Base):
    """A logged retraining sample: a sticker a user sent, or picked after /sticker, with the dialogue
    before it snapshotted at capture time. Written only while the chat's logging is on; history retention never
    touches it, ``/forget`` (the sender's samples, and their turns in others' contexts) and ``/logging off``
    (the chat's samples) delete it."""

    __tablename__ = "training_samples"
    __table_args__ = (Index("ix_training_samples_chat_id_sticker_id", "chat_id", "sticker_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    sticker_id: Mapped[int] = mapped_column(ForeignKey("stickers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # sent | picked
    suggestion_id: Mapped[int | None] = mapped_column(ForeignKey("suggestions.id", ondelete="SET NULL"))
    platform_message_id: Mapped[str | None] = mapped_column(String(64))
    # [{"id": messages.id, "from": users.id | null, "text": ...}], oldest first; users.ids never leave the DB.
    context: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The sticker ids the suggestion showed (picked samples only).
    shown: Mapped[list[int] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
