"""The service facade every adapter calls: record, suggest, packs, feedback, privacy.

The engine owns every rule (history window, which packs a chat may use, cooldowns, privacy); adapters only
translate platform updates into these calls and the results back into platform messages.

Who owns what (each part is one class with a public interface; :class:`StickerService` wires them and
delegates):
``_types`` the values passed in and out; ``_identities`` chats and users and their id cache; ``_messages``
the dialogue history; ``_packs`` the pack life cycle; ``_embeddings`` sticker vectors and the per-chat
matrix cache; ``_suggest`` ranking and the cooldown; ``_suggestions`` suggestions kept for their buttons;
``_feedback`` feedback and logged retraining samples; ``_privacy`` opt-in, retention, /forget, WAL scrub;
``_model_watch`` the hot swap to the model the registry points at.
"""

from engine.service._embeddings import EMBED_BATCH
from engine.service._facade import StickerService, open_service
from engine.service._packs import IMPORT_BATCH
from engine.service._types import (
    ChatRef,
    PackInfo,
    StoredSuggestion,
    SuggestedSticker,
    SuggestResult,
    UserRef,
)

__all__ = [
    "EMBED_BATCH",
    "IMPORT_BATCH",
    "ChatRef",
    "PackInfo",
    "StickerService",
    "StoredSuggestion",
    "SuggestResult",
    "SuggestedSticker",
    "UserRef",
    "open_service",
]
