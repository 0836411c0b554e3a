"""What the service takes and returns: chat and user references, suggestions, stored suggestions, packs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from engine.history import HistoryTurn
from engine.preprocess import clean_label


@dataclass(frozen=True)
class ChatRef:
    platform: str
    chat_id: str
    title: str | None = None

    def __post_init__(self) -> None:  # a platform's title is untrusted text (NUL, overrides, any length)
        object.__setattr__(self, "title", clean_label(self.title, 256))


@dataclass(frozen=True)
class UserRef:
    platform: str
    user_id: str
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", clean_label(self.name, 256))


@dataclass(frozen=True)
class SuggestedSticker:
    rank: int
    sticker_id: int
    pack_name: str
    platform_sticker_id: str
    platform_file_id: str | None
    emoji: str | None
    score: float
    media_path: Path


@dataclass
class SuggestResult:
    items: list[SuggestedSticker] = field(default_factory=list)
    suggestion_id: int | None = None
    # Set when there is nothing to suggest, as a typed outcome each adapter words (in the user's language):
    # "no_packs", "none_sendable", "no_conversation" or "cooldown" (then ``retry_after_s``).
    reason: str | None = None
    retry_after_s: float | None = None
    context: list[HistoryTurn] = field(default_factory=list)
    # What ``SuggestedSticker.score`` is: "match-logit" (a PBR matching head's re-ranking logit) or "cosine"
    # (the dual encoder's similarity). Raw scores are for --json; people see :meth:`fit`.
    score_kind: str = "cosine"

    def fit(self, item: SuggestedSticker) -> float:
        """A score a person can read, 0..1: the matching head's probability that the sticker fits the
        conversation, or for a dual encoder alone its cosine similarity (clipped at 0)."""
        if self.score_kind == "match-logit":
            return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, item.score))))
        return max(0.0, min(1.0, item.score))


@dataclass(frozen=True)
class StoredSuggestion:
    """A /sticker answer as the database keeps it: what any worker needs to act on its buttons."""

    suggestion_id: int
    requester: UserRef | None
    created_at: datetime
    items: list[SuggestedSticker]
    picked: set[int]  # ranks already picked


@dataclass(frozen=True)
class PackInfo:
    name: str
    title: str | None
    platform: str
    stickers: int
    enabled: bool
    # "ready", or "importing": an import still running or interrupted (running it again resumes it)
    status: str = "ready"
    source: str | None = None  # the folder/zip (local packs) or the platform's set it was imported from

    @property
    def unfinished(self) -> bool:
        """Its import is still running or was interrupted: the pack is not served until an import of the same
        ``source`` (under the same ``name``) finishes it. The adapters word how to run that again."""
        return self.status != "ready"
