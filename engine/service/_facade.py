"""The service facade every adapter calls: record, suggest, packs, feedback, privacy.

It wires the parts together (one database, one media store, the ranker served now) and hands every call to
the part that owns it; the rules live in those parts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine import samples as logged
from engine.db import check_schema, create_engine, sessionmaker
from engine.history import History, HistoryPolicy, HistoryTurn
from engine.ingest import MessageWriter
from engine.library import ImportReport, PlatformSticker
from engine.media import DecodeLimits
from engine.ranking import Ranker
from engine.service._embeddings import EmbeddingCache, MatrixCache
from engine.service._feedback import FeedbackLog
from engine.service._identities import Identities
from engine.service._messages import Messages
from engine.service._model_watch import ModelWatch
from engine.service._packs import Packs
from engine.service._privacy import Privacy
from engine.service._suggest import Suggester
from engine.service._suggestions import Suggestions
from engine.service._types import ChatRef, PackInfo, StoredSuggestion, SuggestResult, UserRef
from engine.settings import Settings
from engine.store import MediaStore


class StickerService:
    """``model_dir``: the directory ``ranker`` was loaded from, where it comes from the model registry; the
    service then swaps to the model the registry points at when that changes (:meth:`check_model`)."""

    def __init__(
        self,
        settings: Settings,
        db_engine: AsyncEngine,
        ranker: Ranker,
        default_packs: Sequence[str] = (),
        model_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.db_engine = db_engine
        self.sessions: async_sessionmaker[AsyncSession] = sessionmaker(db_engine)
        self.ranker = ranker
        self.store = MediaStore(settings.media_dir)
        self.history = History(
            HistoryPolicy(
                max_turns=settings.history_turns,
                max_tokens=settings.history_tokens,
                retention_messages=settings.retention_messages,
                retention_days=settings.retention_days,
                max_message_chars=settings.max_message_chars,
            )
        )
        self.limits = DecodeLimits(
            max_bytes=settings.max_media_bytes,
            max_pixels=settings.max_media_pixels,
            max_decompressed_bytes=settings.max_decompressed_bytes,
            timeout_s=settings.decode_timeout_s,
        )
        self.writer = MessageWriter(
            self.sessions,
            self.history.apply_retention,
            max_batch=settings.ingest_batch,
            max_chats=settings.identity_cache,
        )
        self.identities = Identities(self.sessions, settings.identity_cache, default_packs)
        self.embeddings = EmbeddingCache(self.sessions, self.store, settings.embedding_cache_mb)
        self.matrices = MatrixCache(settings, self.embeddings)
        self._ranker_lock = asyncio.Lock()
        self._wire(model_dir)

    def _served(self) -> Ranker:
        """The ranker served now; parts call this per request, as a swap replaces it."""
        return self.ranker

    def _wire(self, model_dir: Path | None) -> None:
        s, served = self.settings, self._served
        self._messages = Messages(self.sessions, self.history, self.identities, self.writer)
        self._packs = Packs(
            s, self.sessions, self.store, self.limits, self.identities, self.embeddings, served
        )
        self._suggestions = Suggestions(self.sessions, self.store)
        self._suggester = Suggester(
            s, self.sessions, self.history, self.identities, self.matrices, self._suggestions, served
        )
        self._feedback = FeedbackLog(self.sessions, self.history, self.identities)
        self._privacy = Privacy(self.db_engine, self.sessions, self.history, self.identities, self.writer)
        self._model_watch = ModelWatch(s, served, self.swap_ranker, model_dir)

    @property
    def default_packs(self) -> list[str]:
        """The packs a chat starts with, enabled when the service first sees it."""
        return self.identities.default_packs

    @default_packs.setter
    def default_packs(self, names: Sequence[str]) -> None:
        self.identities.default_packs = list(names)

    @property
    def model_dir(self) -> Path | None:
        """The directory the served model was loaded from (None: not from the registry, never swapped)."""
        return self._model_watch.model_dir

    @property
    def database_file(self) -> Path | None:
        """The SQLite database's file (None for another database or an in-memory one)."""
        url = self.db_engine.url
        if self.db_engine.dialect.name != "sqlite" or not url.database or url.database == ":memory:":
            return None
        return Path(url.database)

    # ------------------------------------------------------------------ life cycle
    @classmethod
    async def open(
        cls,
        settings: Settings,
        ranker: Ranker,
        default_packs: Sequence[str] = (),
        model_dir: Path | None = None,
    ) -> StickerService:
        """Connect and refuse to run on an out-of-date schema (``SchemaOutOfDate``: the caller says to upgrade)."""
        db_engine = create_engine(settings.db_url)
        try:
            await check_schema(db_engine)
        except Exception:
            await db_engine.dispose()
            raise
        return cls(settings, db_engine, ranker, default_packs, model_dir=model_dir)

    async def close(self) -> None:
        self._model_watch.cancel()
        await self.writer.flush()  # messages already acknowledged are committed; these too
        await self._suggestions.close()
        await self.db_engine.dispose()

    async def swap_ranker(self, ranker: Ranker) -> None:
        """Serve a new model from the next request on; in-flight requests finish on the old one."""
        async with self._ranker_lock:
            self.ranker = ranker
            self.matrices.clear()
            self.embeddings.keep_only(ranker.version)  # the old model's vectors stay in the database only

    async def check_model(self) -> bool:
        """Serve the model the settings now name (the registry's ``current`` pointer after the CLI's
        `model promote` or `model rollback`) if it is not the one loaded; True when it swapped. Stickers are
        re-embedded lazily: embeddings are keyed by model version."""
        return await self._model_watch.check()

    # ------------------------------------------------------------------ history
    async def record(
        self,
        chat: ChatRef,
        user: UserRef | None,
        text: str,
        message_id: str | None = None,
        reply_to: str | None = None,
        at: datetime | None = None,
    ) -> int | None:
        """Append a message to the chat's history. Returns its id, or None when there was no text."""
        return await self._messages.record(chat, user, text, message_id, reply_to, at)

    async def edit(self, chat: ChatRef, message_id: str, text: str) -> bool:
        return await self._messages.edit(chat, message_id, text)

    async def clear_history(self, chat: ChatRef) -> int:
        return await self._messages.clear(chat)

    async def recent(self, chat: ChatRef) -> list[HistoryTurn]:
        return await self._messages.recent(chat)

    # ------------------------------------------------------------------ packs
    async def import_pack(
        self,
        source: Path,
        name: str | None = None,
        title: str | None = None,
        platform: str = "local",
        progress: Callable[[int, int], None] | None = None,
        label: str | None = None,
    ) -> ImportReport:
        """Import a pack into the library (no chat); embeddings are computed now, once. ``label``: how its
        errors name the source (default: the path as given)."""
        return await self._packs.import_pack(source, name, title, platform, progress, label)

    async def import_platform_pack(
        self,
        platform: str,
        name: str,
        stickers: list[PlatformSticker],
        title: str | None = None,
        source: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportReport:
        """Import (or refresh) a platform sticker set; only stickers new to the library are fetched."""
        return await self._packs.import_platform_pack(platform, name, stickers, title, source, progress)

    async def add_pack(
        self,
        chat: ChatRef,
        source: Path,
        name: str | None = None,
        title: str | None = None,
        by: UserRef | None = None,
        progress: Callable[[int, int], None] | None = None,
        label: str | None = None,
    ) -> ImportReport:
        return await self._packs.add_pack(chat, source, name, title, by, progress, label)

    async def has_pack(self, name: str, platform: str | None = None) -> bool:
        return await self._packs.has_pack(name, platform)

    async def enable_pack(self, chat: ChatRef, name: str, by: UserRef | None = None) -> None:
        await self._packs.enable_pack(chat, name, by)

    async def remove_pack(self, chat: ChatRef, name: str) -> None:
        """Stop using a pack in one chat (the library keeps it for other chats)."""
        await self._packs.remove_pack(chat, name)

    async def delete_pack(self, name: str) -> int:
        """Remove a pack from the library and from every chat. Returns the number of stickers removed."""
        return await self._packs.delete_pack(name)

    async def list_packs(self, chat: ChatRef | None = None) -> list[PackInfo]:
        return await self._packs.list_packs(chat)

    async def reembed_all(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Embed every sticker in the library with the current model (the batch job after a model change)."""
        return await self.embeddings.reembed_all(self.ranker, progress)

    # ------------------------------------------------------------------ suggestions
    async def suggest(self, chat: ChatRef, k: int | None = None, **options: Any) -> SuggestResult:
        """The top-k of the chat's stickers for its recent dialogue; ``options``: ``user``, ``text``,
        ``cooldown``, ``cap``, ``packs_from``, ``sendable_only`` (see ``Suggester.suggest``)."""
        self._model_watch.maybe_check()
        return await self._suggester.suggest(chat, k, **options)

    async def stored_suggestion(
        self, suggestion_id: int, chat: ChatRef, max_age_s: float | None = None
    ) -> StoredSuggestion | None:
        """A suggestion made in ``chat`` (by any worker sharing the database), with its items in rank order
        and the ranks already picked. None when it is another chat's, older than ``max_age_s``, or one of its
        stickers was deleted since."""
        return await self._suggestions.stored(suggestion_id, chat, max_age_s)

    # ------------------------------------------------------------------ feedback and logged samples
    async def feedback(
        self,
        suggestion_id: int | None,
        sticker_id: int,
        chat: ChatRef,
        user: UserRef | None,
        kind: str = "picked",
    ) -> None:
        await self._feedback.feedback(suggestion_id, sticker_id, chat, user, kind)

    async def has_chat_sticker(self, chat: ChatRef, sticker: str) -> bool:
        """Is ``sticker`` (a platform sticker id) one of the chat's enabled packs' stickers?"""
        return await self._feedback.has_chat_sticker(chat, sticker)

    async def record_sticker(
        self,
        chat: ChatRef,
        user: UserRef | None,
        sticker: str | int,
        message_id: str | None = None,
        at: datetime | None = None,
        *,
        packs_from: ChatRef | None = None,
    ) -> int | None:
        """A user sent a sticker: where the chat's logging is on, a retraining sample (its id; None when
        nothing was kept). See ``FeedbackLog.record_sticker``."""
        return await self._feedback.record_sticker(chat, user, sticker, message_id, at, packs_from=packs_from)

    async def logged_samples(
        self, since: datetime | None = None, chats: Sequence[str] = ()
    ) -> list[logged.LoggedSample]:
        """What the CLI's `data export` may write (chats with logging on, oldest first)."""
        return await self._feedback.logged_samples(since, chats)

    async def sticker_rows(self, ids: Sequence[int]) -> dict[int, tuple[int, str | None, str]]:
        """sticker id → (pack id, emoji, media sha256), for an export's positives and candidates."""
        return await self._feedback.sticker_rows(ids)

    # ------------------------------------------------------------------ chats of a user
    async def recent_chat_for(self, user: UserRef, within_s: float) -> ChatRef | None:
        """The chat this user last wrote in, if within ``within_s`` seconds (inline queries carry no chat)."""
        return await self.identities.recent_chat_for(user, within_s)

    async def chats_of(self, user: UserRef, limit: int = 20) -> list[ChatRef]:
        """The chats this user has written in (their kept history), most recent first (Telegram: where to
        offer a pack the user sent privately; the adapter decides where the user may act)."""
        return await self.identities.chats_of(user, limit)

    # ------------------------------------------------------------------ privacy
    async def apply_retention(self, platform: str | None = None) -> int:
        """Apply the history retention policy to every chat (of one platform), now: a quiet chat's old
        messages go too, not only when new ones arrive. Returns how many messages were deleted."""
        return await self._privacy.apply_retention(platform)

    async def set_logging(self, chat: ChatRef, enabled: bool) -> None:
        await self._privacy.set_logging(chat, enabled)

    async def logging_enabled(self, chat: ChatRef) -> bool:
        return await self._privacy.logging_enabled(chat)

    async def forget(self, user: UserRef) -> int:
        """Delete everything kept about a user in every chat. Returns the number of messages deleted."""
        return await self._privacy.forget(user)


async def open_service(settings: Settings, threads: int = 0) -> StickerService:
    """The one way adapters get a service: the serving model from the settings, schema checked."""
    from engine.ranking import load_ranker

    kind = "auto" if settings.ranker in ("auto", "pbr") else settings.ranker
    model_dir = settings.serving_model_dir()
    ranker = load_ranker(
        kind, model_dir, max_turns=settings.history_turns, threads=threads, multilingual=settings.multilingual
    )
    # `check_model` compares the registry's pointer against model_dir
    return await StickerService.open(
        settings, ranker, default_packs=settings.default_packs, model_dir=model_dir
    )
