"""Database models and sessions."""

from engine.db._models import (
    Base,
    Chat,
    ChatPack,
    Feedback,
    Message,
    Pack,
    Sticker,
    StickerEmbedding,
    Suggestion,
    SuggestionItem,
    User,
    utcnow,
)
from engine.db._session import (
    MIGRATIONS_DIR,
    SchemaOutOfDate,
    check_schema,
    create_engine,
    current_revision,
    head_revision,
    is_sqlite,
    sessionmaker,
)

__all__ = [
    "MIGRATIONS_DIR",
    "Base",
    "Chat",
    "ChatPack",
    "Feedback",
    "Message",
    "Pack",
    "SchemaOutOfDate",
    "Sticker",
    "StickerEmbedding",
    "Suggestion",
    "SuggestionItem",
    "User",
    "check_schema",
    "create_engine",
    "current_revision",
    "head_revision",
    "is_sqlite",
    "sessionmaker",
    "utcnow",
]
