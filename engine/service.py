"""The service facade every adapter calls: record, suggest, packs, feedback, privacy.

The engine owns every rule (history window, which packs a chat may use, cooldowns, privacy); adapters only
translate platform updates into these calls and the results back into platform messages.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine import metrics
from engine import samples as logged
from engine.db import (
    Chat,
    ChatPack,
    Feedback,
    Message,
    Pack,
    Sticker,
    StickerEmbedding,
    Suggestion,
    SuggestionItem,
    TrainingSample,
    User,
    check_schema,
    checkpoint_truncate,
    create_engine,
    rowcount,
    sessionmaker,
    utcnow,
)
from engine.errors import EmbeddingFailed, PackBusy, PackNotEnabled, UnknownPack
from engine.history import History, HistoryPolicy, Turn
from engine.ingest import LRU, MessageWriter, PendingMessage
from engine.library import (
    ImportBudget,
    ImportReport,
    PlatformSticker,
    import_pack,
    import_platform_pack,
    validate_pack_name,
)
from engine.media import DecodeLimits
from engine.preprocess import clean_label
from engine.ranking import Ranker, StickerInput, top_k
from engine.settings import Settings
from engine.store import MediaStore

log = logging.getLogger(__name__)

EMBED_BATCH = 64
# What an adapter needs to show or send a suggested sticker (one row per sticker, with its pack's name).
_SHOWN_COLUMNS = (
    Sticker.id,
    Pack.name,
    Sticker.platform_sticker_id,
    Sticker.platform_file_id,
    Sticker.emoji,
    Sticker.media_sha256,
)
IMPORT_BATCH = 64  # stickers per commit while a pack is imported


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
    # Set when there is nothing to suggest: a sentence for the user (no packs, no conversation, cooldown).
    message: str | None = None
    # The same as a typed outcome, for adapters that word it themselves (in the user's language):
    # "no_packs", "none_sendable", "no_conversation" or "cooldown" (then ``retry_after_s``).
    reason: str | None = None
    retry_after_s: float | None = None
    context: list[Turn] = field(default_factory=list)
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
    # "ready", or "importing": an import still running or interrupted (run it again to resume)
    status: str = "ready"
    source: str | None = None  # the folder/zip (local packs) or the platform's set it was imported from

    @property
    def resume_hint(self) -> str | None:
        """For a pack that is not ready: how to finish its import (None for a ready pack)."""
        if self.status == "ready":
            return None
        if self.platform == "local":
            import shlex

            src = shlex.quote(self.source) if self.source else "PATH"
            return f"run `stickerpick packs add {src} --name {self.name}` again to finish it"
        return "add the set again to finish it"


@dataclass
class _ChatMatrix:
    """The embeddings of a set of stickers (rows in ``ids`` order); shared by the chats that enable them."""

    ids: np.ndarray
    matrix: np.ndarray


class StickerService:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        ranker: Ranker,
        default_packs: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = sessionmaker(engine)
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
        self.default_packs = list(default_packs)
        self._vectors: dict[str, dict[int, np.ndarray]] = {}
        # Per-chat state is bounded. A chat maps to the key of its sticker matrix; chats with the
        # same enabled stickers (e.g. only the default pack) share one matrix, kept within matrix_cache_mb.
        self._chat_matrix_keys: LRU[int, tuple[int, str, bytes]] = LRU(settings.identity_cache)
        self._matrices: LRU[tuple[str, bytes], _ChatMatrix] = LRU(1_000_000)
        self._ids: LRU[tuple[str, str, str], tuple[int, str | None]] = LRU(settings.identity_cache)
        self._claims: LRU[int, float] = LRU(settings.identity_cache)  # when /sticker last answered a chat
        self._ranker_lock = asyncio.Lock()
        self._captions: Any = None
        self.writer = MessageWriter(
            self.sessions,
            self.history.apply_retention,
            max_batch=settings.ingest_batch,
            max_chats=settings.identity_cache,
        )
        self._model_dir: Path | None = None  # the directory the ranker was loaded from
        self._model_checked = time.monotonic()
        self._model_task: asyncio.Task[bool] | None = None

    async def _caption(self, image: object) -> str | None:
        """OCR of a sticker's caption at import (STICKERPICK_OCR_CAPTIONS); failures never fail an import."""
        if not self.settings.ocr_captions:
            return None
        if self._captions is None:
            from engine.ocr import CaptionReader

            self._captions = CaptionReader()
        try:
            return await asyncio.to_thread(self._captions.read, image)
        except Exception:  # OCR is a nicety: log and go on without a caption
            log.warning("OCR failed on a sticker; imported without a caption", exc_info=True)
            return None

    # ------------------------------------------------------------------ life cycle
    @classmethod
    async def open(
        cls, settings: Settings, ranker: Ranker, default_packs: Sequence[str] = ()
    ) -> StickerService:
        """Connect and refuse to run on an out-of-date schema (the error says to run `stickerpick db upgrade`)."""
        engine = create_engine(settings.db_url)
        try:
            await check_schema(engine)
        except Exception:
            await engine.dispose()
            raise
        return cls(settings, engine, ranker, default_packs)

    async def close(self) -> None:
        if self._model_task is not None and not self._model_task.done():
            self._model_task.cancel()
        await self.writer.flush()  # messages already acknowledged are committed; these too
        await self.engine.dispose()

    async def swap_ranker(self, ranker: Ranker) -> None:
        """Serve a new model from the next request on; in-flight requests finish on the old one."""
        async with self._ranker_lock:
            self.ranker = ranker
            self._matrices.clear()
            self._chat_matrix_keys.clear()
            for version in [v for v in self._vectors if v != ranker.version]:
                del self._vectors[version]  # the old model's sticker vectors stay in the database only

    # ------------------------------------------------------------------ model registry
    async def check_model(self) -> bool:
        """Serve the model the settings now name (the registry's ``current`` pointer after
        `stickerpick model promote|rollback`) if it is not the one loaded; True when it swapped. Stickers are
        re-embedded lazily: embeddings are keyed by model version."""
        from engine.ranking import load_ranker

        self._model_checked = time.monotonic()
        if self._model_dir is None:
            return False
        target = self.settings.serving_model_dir()
        if target.resolve() == self._model_dir.resolve():
            return False
        kind = "auto" if self.settings.ranker in ("auto", "pbr") else self.settings.ranker
        try:
            ranker = await asyncio.to_thread(load_ranker, kind, target, max_turns=self.settings.history_turns)
        except Exception:
            log.exception(
                "could not load the promoted model %s; still serving %s", target, self.ranker.version
            )
            return False
        await self.swap_ranker(ranker)
        self._model_dir = target
        log.info("now serving %s from %s", ranker.version, target)
        return True

    def _maybe_check_model(self) -> None:
        """Cheap: at most every ``model_check_s``, look at the pointer in the background."""
        every = self.settings.model_check_s
        if self._model_dir is None or every <= 0 or time.monotonic() - self._model_checked < every:
            return
        if self._model_task is not None and not self._model_task.done():
            return
        self._model_checked = time.monotonic()
        self._model_task = asyncio.create_task(self.check_model())

    # ------------------------------------------------------------------ identities
    async def _chat(self, session: AsyncSession, ref: ChatRef, create: bool = True) -> Chat | None:
        q = select(Chat).where(Chat.platform == ref.platform, Chat.platform_chat_id == str(ref.chat_id))
        chat = (await session.execute(q)).scalar_one_or_none()
        if chat is None and create:
            try:
                async with session.begin_nested():
                    chat = Chat(platform=ref.platform, platform_chat_id=str(ref.chat_id), title=ref.title)
                    session.add(chat)
                    await session.flush()
                    await self._enable_defaults(session, chat)
            except IntegrityError:  # created concurrently by another worker
                chat = (await session.execute(q)).scalar_one()
        elif chat is not None and ref.title and chat.title != ref.title:
            chat.title = ref.title
        if chat is not None:
            self._ids[("c", ref.platform, str(ref.chat_id))] = (chat.id, chat.title)
        return chat

    async def _enable_defaults(self, session: AsyncSession, chat: Chat) -> None:
        if not self.default_packs:
            return
        packs = (await session.execute(select(Pack).where(Pack.name.in_(self.default_packs)))).scalars()
        for pack in packs:
            session.add(ChatPack(chat_id=chat.id, pack_id=pack.id, enabled=True))
        chat.packs_version += 1

    async def _user(self, session: AsyncSession, ref: UserRef | None, create: bool = True) -> User | None:
        if ref is None:
            return None
        q = select(User).where(User.platform == ref.platform, User.platform_user_id == str(ref.user_id))
        user = (await session.execute(q)).scalar_one_or_none()
        if user is None and create:
            try:
                async with session.begin_nested():
                    user = User(
                        platform=ref.platform, platform_user_id=str(ref.user_id), display_name=ref.name
                    )
                    session.add(user)
                    await session.flush()
            except IntegrityError:
                user = (await session.execute(q)).scalar_one()
        elif user is not None and ref.name and user.display_name != ref.name:
            user.display_name = ref.name
        if user is not None:
            self._ids[("u", ref.platform, str(ref.user_id))] = (user.id, user.display_name)
        return user

    async def _chat_id(self, ref: ChatRef) -> int:
        """The chat's database id (created on first sight) from a bounded cache: no lookup per message."""
        hit = self._ids.get(("c", ref.platform, str(ref.chat_id)))
        if hit is not None and (not ref.title or hit[1] == ref.title):
            return hit[0]
        async with self.sessions.begin() as session:
            chat = await self._chat(session, ref)
            assert chat is not None
            return chat.id

    async def _user_id(self, ref: UserRef | None) -> int | None:
        if ref is None:
            return None
        hit = self._ids.get(("u", ref.platform, str(ref.user_id)))
        if hit is not None and (not ref.name or hit[1] == ref.name):
            return hit[0]
        async with self.sessions.begin() as session:
            user = await self._user(session, ref)
            return user.id if user else None

    def _forget_ids(self, chat: ChatRef | None = None, user: UserRef | None = None) -> None:
        if chat is not None:
            self._ids.pop(("c", chat.platform, str(chat.chat_id)))
        if user is not None:
            self._ids.pop(("u", user.platform, str(user.user_id)))

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
        clean = self.history.normalise(text)
        if not clean:
            return None
        pending = PendingMessage(
            chat_id=await self._chat_id(chat),
            user_id=await self._user_id(user),
            text=clean,
            platform_message_id=message_id,
            reply_to=reply_to,
            created_at=at or utcnow(),
        )
        try:
            return await self.writer.write(pending)  # group commit; returns once committed
        except IntegrityError:
            # a cached id went stale (the user /forget-ed on another worker a moment ago): look up again
            self._forget_ids(chat, user)
            pending = replace(pending, chat_id=await self._chat_id(chat), user_id=await self._user_id(user))
            return await self.writer.write(pending)

    async def edit(self, chat: ChatRef, message_id: str, text: str) -> bool:
        async with self.sessions.begin() as session:
            c = await self._chat(session, chat, create=False)
            if c is None:
                return False
            return await self.history.edit(session, c.id, str(message_id), text)

    async def clear_history(self, chat: ChatRef) -> int:
        async with self.sessions.begin() as session:
            c = await self._chat(session, chat, create=False)
            if c is None:
                return 0
            result = await session.execute(delete(Message).where(Message.chat_id == c.id))
            return rowcount(result)

    async def recent(self, chat: ChatRef) -> list[Turn]:
        async with self.sessions() as session:
            c = await self._chat(session, chat, create=False)
            if c is None:
                return []
            return await self.history.recent(session, c.id)

    # ------------------------------------------------------------------ packs
    async def import_pack(
        self,
        source: Path,
        name: str | None = None,
        title: str | None = None,
        platform: str = "local",
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportReport:
        """Import a pack into the library (no chat); embeddings are computed now, once."""
        return await self._import_and_embed(
            import_pack, source, name=name, title=title, platform=platform, progress=progress
        )

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
        return await self._import_and_embed(
            import_platform_pack,
            stickers,
            name=name,
            title=title,
            platform=platform,
            source=source,
            progress=progress,
        )

    async def _import_and_embed(self, importer: Callable[..., Any], what: Any, **kwargs: Any) -> ImportReport:
        platform = str(kwargs.get("platform", "local"))
        try:
            report = await self._import_and_embed_counted(importer, what, **kwargs)
        except Exception:
            metrics.IMPORTS.labels(platform, "failed").inc()
            raise
        metrics.IMPORTS.labels(platform, "ok").inc()
        metrics.STICKERS_IMPORTED.labels(platform).inc(report.added)
        return report

    async def _import_and_embed_counted(
        self, importer: Callable[..., Any], what: Any, **kwargs: Any
    ) -> ImportReport:
        """The library import (files or a platform set), committed every ``IMPORT_BATCH`` new stickers (a
        killed import keeps its work and resumes when run again), then embed the new stickers. A new pack turns
        ``ready`` (served) only once they are embedded (issue 14); if embedding fails, the pack (new or
        refreshed) is left ``importing``, never served half-embedded, and running the import again finishes it.
        Another import of the same new pack running at once: :class:`PackBusy`."""
        await asyncio.to_thread(self.store.sweep_temp)  # what a killed import left half-written
        budget = ImportBudget(self.settings.max_pack_bytes, self.settings.pack_import_budget_s)
        try:
            async with self.sessions() as session:  # closing it uncommitted (an error) rolls the rest back
                pack, report = await importer(
                    session,
                    self.store,
                    what,
                    self.limits,
                    max_stickers=self.settings.max_pack_stickers,
                    captions=self._caption,
                    commit_every=IMPORT_BATCH,
                    budget=budget,
                    **kwargs,
                )
                pack_id = pack.id
                new_pack = not report.served_before
                if new_pack:  # issue 14: served ("ready") only once its embeddings exist, below
                    pack.status = "importing"
                await _bump_chats_of(session, pack_id)
                await session.commit()
        except (IntegrityError, OperationalError) as exc:
            # issue 14: another import of the same pack got there first (its pack or sticker rows exist now)
            if isinstance(exc, OperationalError) and "locked" not in str(exc.orig):
                raise
            raise PackBusy(kwargs.get("name")) from None
        try:
            await self._embed_pack(pack_id)
        except Exception as exc:  # e.g. a damaged image tower: the pack stays "importing", never served
            log.warning("embedding pack %s failed", pack_id, exc_info=True)
            async with self.sessions.begin() as session:
                await session.execute(update(Pack).where(Pack.id == pack_id).values(status="importing"))
                await _bump_chats_of(session, pack_id)
            raise EmbeddingFailed(self.ranker.version, type(exc).__name__) from None
        if new_pack:
            async with self.sessions.begin() as session:
                await session.execute(update(Pack).where(Pack.id == pack_id).values(status="ready"))
                await _bump_chats_of(session, pack_id)
        return report

    async def add_pack(
        self,
        chat: ChatRef,
        source: Path,
        name: str | None = None,
        title: str | None = None,
        by: UserRef | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportReport:
        report = await self.import_pack(source, name=name, title=title, progress=progress)
        await self.enable_pack(chat, report.pack_name, by=by)
        return report

    async def _find_pack(self, session: AsyncSession, name: str, platform: str | None = None) -> Pack:
        """A pack by name; where several platforms have one of that name, ``platform``'s wins, then local."""
        validate_pack_name(name)
        packs = list((await session.execute(select(Pack).where(Pack.name == name))).scalars())
        if not packs:
            raise UnknownPack(name)
        preference = {platform: 0, "local": 1}
        return min(packs, key=lambda p: preference.get(p.platform, 2))

    async def has_pack(self, name: str, platform: str | None = None) -> bool:
        async with self.sessions() as session:
            q = select(Pack.id).where(Pack.name == name)
            if platform:
                q = q.where(Pack.platform == platform)
            return (await session.execute(q.limit(1))).first() is not None

    async def enable_pack(self, chat: ChatRef, name: str, by: UserRef | None = None) -> None:
        async with self.sessions.begin() as session:
            pack = await self._find_pack(session, name, chat.platform)
            c = await self._chat(session, chat)
            assert c is not None
            u = await self._user(session, by)
            link = await session.get(ChatPack, (c.id, pack.id))
            if link is None:
                session.add(
                    ChatPack(chat_id=c.id, pack_id=pack.id, enabled=True, added_by=u.id if u else None)
                )
            else:
                link.enabled = True
            c.packs_version += 1

    async def remove_pack(self, chat: ChatRef, name: str) -> None:
        """Stop using a pack in one chat (the library keeps it for other chats)."""
        async with self.sessions.begin() as session:
            pack = await self._find_pack(session, name, chat.platform)
            c = await self._chat(session, chat, create=False)
            link = await session.get(ChatPack, (c.id, pack.id)) if c else None
            if c is None or link is None:
                raise PackNotEnabled(name)
            await session.delete(link)
            c.packs_version += 1

    async def delete_pack(self, name: str) -> int:
        """Remove a pack from the library and from every chat. Returns the number of stickers removed."""
        async with self.sessions.begin() as session:
            pack = await self._find_pack(session, name)
            n = (await session.execute(select(func.count()).where(Sticker.pack_id == pack.id))).scalar_one()
            chat_ids = select(ChatPack.chat_id).where(ChatPack.pack_id == pack.id)
            await session.execute(
                update(Chat).where(Chat.id.in_(chat_ids)).values(packs_version=Chat.packs_version + 1)
            )
            await session.delete(pack)
            return int(n)

    async def list_packs(self, chat: ChatRef | None = None) -> list[PackInfo]:
        async with self.sessions() as session:
            counts = select(Sticker.pack_id, func.count().label("n")).group_by(Sticker.pack_id).subquery()
            q = select(Pack, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.pack_id == Pack.id)
            enabled: set[int] = set()
            if chat is not None:
                c = await self._chat(session, chat, create=False)
                if c is None:
                    return []
                links = await session.execute(
                    select(ChatPack.pack_id).where(ChatPack.chat_id == c.id, ChatPack.enabled)
                )
                enabled = {pid for (pid,) in links}
                q = q.where(Pack.id.in_(enabled))
            rows = (await session.execute(q.order_by(Pack.name))).all()
            return [
                PackInfo(
                    p.name, p.title, p.platform, int(n), chat is None or p.id in enabled, p.status, p.source
                )
                for p, n in rows
            ]

    # ------------------------------------------------------------------ embeddings
    def _cache(self, version: str) -> dict[int, np.ndarray]:
        return self._vectors.setdefault(version, {})

    async def _embed_pack(self, pack_id: int) -> None:
        async with self.sessions() as session:
            ids = list(
                (await session.execute(select(Sticker.id).where(Sticker.pack_id == pack_id))).scalars()
            )
        await self._ensure_embeddings(ids)

    async def _ensure_embeddings(self, sticker_ids: Sequence[int]) -> None:
        """Embed each sticker once per model version: memory cache → database → compute (then store)."""
        ranker = self.ranker
        cache = self._cache(ranker.version)
        missing = [i for i in sticker_ids if i not in cache]
        if not missing:
            return
        async with self.sessions() as session:
            for start in range(0, len(missing), 900):
                chunk = missing[start : start + 900]
                rows = await session.execute(
                    select(StickerEmbedding.sticker_id, StickerEmbedding.vector).where(
                        StickerEmbedding.model_version == ranker.version,
                        StickerEmbedding.sticker_id.in_(chunk),
                    )
                )
                for sid, blob in rows:
                    cache[sid] = np.frombuffer(blob, dtype="<f4")
        todo = [i for i in missing if i not in cache]
        for start in range(0, len(todo), EMBED_BATCH):
            batch = todo[start : start + EMBED_BATCH]
            async with self.sessions() as session:
                stickers = list(
                    (await session.execute(select(Sticker).where(Sticker.id.in_(batch)))).scalars()
                )
            inputs = [
                StickerInput(
                    self.store.open(s.media_sha256) if ranker.needs_images else None,
                    s.emoji,
                    tuple(s.tags or ()),
                    s.caption,
                )
                for s in stickers
            ]
            vectors = await asyncio.to_thread(ranker.embed_stickers, inputs)
            async with self.sessions.begin() as session:
                for s, v in zip(stickers, vectors, strict=True):
                    vec = np.ascontiguousarray(v, dtype="<f4")
                    cache[s.id] = vec
                    await session.merge(
                        StickerEmbedding(
                            sticker_id=s.id,
                            model_version=ranker.version,
                            dim=vec.shape[0],
                            vector=vec.tobytes(),
                        )
                    )

    async def reembed_all(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Embed every sticker in the library with the current model (the batch job after a model change)."""
        async with self.sessions() as session:
            ids = list((await session.execute(select(Sticker.id))).scalars())
        for start in range(0, len(ids), 512):
            await self._ensure_embeddings(ids[start : start + 512])
            if progress:
                progress(min(start + 512, len(ids)), len(ids))
        return len(ids)

    async def _chat_matrix(self, session: AsyncSession, chat: Chat) -> _ChatMatrix | None:
        ranker = self.ranker
        key = self._chat_matrix_keys.get(chat.id)
        if key is not None and key[:2] == (chat.packs_version, ranker.version):
            cached = self._matrices.get((ranker.version, key[2]))
            if cached is not None:
                return cached
        rows = await session.execute(
            select(Sticker.id, Sticker.media_sha256)
            .join(ChatPack, ChatPack.pack_id == Sticker.pack_id)
            .join(Pack, Pack.id == Sticker.pack_id)
            .where(ChatPack.chat_id == chat.id, ChatPack.enabled, Pack.status == "ready")
            .order_by(Sticker.id)
        )
        ids: list[int] = []
        seen_media: set[str] = set()
        for sid, sha in rows:
            if sha in seen_media:  # the same picture in two packs is one suggestion
                continue
            seen_media.add(sha)
            ids.append(sid)
        if not ids:
            return None
        id_array = np.asarray(ids, dtype=np.int64)
        digest = hashlib.blake2b(id_array.tobytes(), digest_size=16).digest()
        self._chat_matrix_keys[chat.id] = (chat.packs_version, ranker.version, digest)
        shared = self._matrices.get((ranker.version, digest))
        if shared is not None:  # another chat with the same stickers built it
            return shared
        await self._ensure_embeddings(ids)
        cache = self._cache(ranker.version)
        matrix = np.stack([cache[i] for i in ids]).astype(np.float32)
        built = _ChatMatrix(id_array, matrix)
        self._matrices[(ranker.version, digest)] = built
        self._trim_matrices(keep=built)
        return built

    def _trim_matrices(self, keep: _ChatMatrix) -> None:
        """Forget the least recently used matrices beyond ``matrix_cache_mb`` (rebuilt from the embedding
        cache when their chats speak again)."""
        budget = self.settings.matrix_cache_mb * 2**20
        held = sum(m.matrix.nbytes + m.ids.nbytes for m in self._matrices.values())
        while held > budget and len(self._matrices) > 1:
            oldest = self._matrices.oldest()
            if oldest is None or oldest[1] is keep:
                return
            self._matrices.pop(oldest[0])
            held -= oldest[1].matrix.nbytes + oldest[1].ids.nbytes

    # ------------------------------------------------------------------ suggestions
    async def suggest(self, chat: ChatRef, k: int | None = None, **options: Any) -> SuggestResult:
        """:meth:`_suggest`, counted and timed for the metrics endpoint."""
        start = time.perf_counter()
        try:
            result = await self._suggest(chat, k, **options)
        except Exception:
            metrics.ERRORS.labels(chat.platform, "suggest").inc()
            raise
        metrics.SUGGESTION_SECONDS.labels(chat.platform).observe(time.perf_counter() - start)
        metrics.SUGGESTIONS.labels(chat.platform, "stickers" if result.items else "message").inc()
        return result

    async def _suggest(
        self,
        chat: ChatRef,
        k: int | None = None,
        user: UserRef | None = None,
        text: str | None = None,
        cooldown: bool = True,
        *,
        cap: int | None = None,
        packs_from: ChatRef | None = None,
        sendable_only: bool = False,
    ) -> SuggestResult:
        """The top-k of the chat's stickers for its recent dialogue (or for ``text``, e.g. an inline query).
        ``cooldown=False`` for requests a platform already rate-limits (inline queries, button presses).
        ``cap`` replaces ``settings.max_k`` as the most items returned (Telegram's inline results: up to 50).
        ``packs_from`` (Discord): rank the stickers enabled in that chat instead of in ``chat``, for
        platforms whose packs belong to a group of chats (a Discord server) while each channel or thread
        keeps its own history and cooldown.
        ``sendable_only`` (Telegram inline mode): rank only stickers the platform can send by its
        own file id (an inline answer cannot upload a local pack's picture)."""
        k = max(1, min(k or self.settings.top_k, cap or self.settings.max_k))
        self._maybe_check_model()
        ranker = self.ranker
        # before this request's transaction: on SQLite a lookup that creates the user in a transaction of its
        # own must not wait on this one's write lock
        requested_by = await self._user_id(user)
        async with self.sessions.begin() as session:
            c = await self._chat(session, chat)
            assert c is not None
            # The cooldown lives in the database, so every worker sharing it enforces the same one
            now = time.time()
            cooling = cooldown and self.settings.sticker_cooldown_s > 0
            if cooling:
                last = max(c.last_sticker_at or 0.0, self._claims.get(c.id) or 0.0)
                wait = self.settings.sticker_cooldown_s - (now - last)
                if wait > 0:
                    return self._cooldown_answer(wait)
            pack_chat = c if packs_from is None else await self._chat(session, packs_from)
            assert pack_chat is not None
            mat = await self._chat_matrix(session, pack_chat)
            if mat is None:
                return SuggestResult(
                    message="This chat has no sticker packs yet. An admin can add one with /addpack "
                    "(console: `stickerpick packs add PATH --chat ...`).",
                    reason="no_packs",
                )
            if sendable_only:
                mat = await self._sendable_subset(session, pack_chat, mat)
                if mat is None:
                    return SuggestResult(
                        message="None of this chat's stickers can be sent from here yet.",
                        reason="none_sendable",
                    )
            if text is not None and self.history.normalise(text):
                turns = []
                query_text = ranker.dialogue_text([text])
            else:
                turns = await self.history.recent(session, c.id, count_tokens=ranker.count_tokens)
                if not turns:
                    return SuggestResult(
                        message="There is no conversation here yet: say something first.",
                        reason="no_conversation",
                    )
                query_text = ranker.dialogue_text([t.text for t in turns])
            if cooling:  # this process's guard, until the database claim below settles it for every worker
                self._claims[c.id] = now
            query = (await asyncio.to_thread(ranker.embed_dialogues, [query_text]))[0]
            scores = mat.matrix @ query
            prior = await self._usage_prior(session, c, mat.ids)
            best, scores = await self._rank(ranker, query, mat.matrix, scores, k, prior)
            chosen_ids = [int(mat.ids[i]) for i in best]
            # the first write of the request, after the model ran: SQLite's write lock is held only for the
            # writes, and of two workers answering one chat at once exactly one wins
            if cooling and not await self._claim_cooldown(session, c, now):
                return self._cooldown_answer(self.settings.sticker_cooldown_s)
            # Core statements, not the ORM unit of work: a third of the request's Python time went to flushes
            suggestion_id = (
                await session.execute(
                    insert(Suggestion)
                    .values(
                        chat_id=c.id,
                        requested_by=requested_by,
                        model_version=ranker.version,
                        last_message_id=turns[-1].message_id if turns else None,
                        created_at=utcnow(),
                    )
                    .returning(Suggestion.id)
                )
            ).scalar_one()
            details = {
                row.id: row
                for row in (
                    await session.execute(
                        select(*_SHOWN_COLUMNS).join(Pack).where(Sticker.id.in_(chosen_ids))
                    )
                ).all()
            }
            items = [
                self._shown(rank, float(scores[idx]), details[sid])
                for rank, (idx, sid) in enumerate(zip(best, chosen_ids, strict=True))
            ]
            await session.execute(
                insert(SuggestionItem),
                [
                    {
                        "suggestion_id": suggestion_id,
                        "rank": i.rank,
                        "sticker_id": i.sticker_id,
                        "score": i.score,
                    }
                    for i in items
                ],
            )
            reranked = getattr(ranker, "rerank_scores", None) is not None and self.settings.rerank_top > 0
            return SuggestResult(
                items=items,
                suggestion_id=suggestion_id,
                context=turns,
                score_kind="match-logit" if reranked else "cosine",
            )

    def _shown(self, rank: int, score: float, row: Any) -> SuggestedSticker:
        """A suggested sticker from a row of ``_SHOWN_COLUMNS``."""
        return SuggestedSticker(
            rank,
            row.id,
            row.name,
            row.platform_sticker_id,
            row.platform_file_id,
            row.emoji,
            score,
            self.store.path(row.media_sha256),
        )

    @staticmethod
    def _cooldown_answer(wait: float) -> SuggestResult:
        return SuggestResult(
            message=f"Easy there — try /sticker again in {max(1, round(wait))} s.",
            reason="cooldown",
            retry_after_s=wait,
        )

    async def _claim_cooldown(self, session: AsyncSession, chat: Chat, now: float) -> bool:
        """Take this chat's /sticker slot: one conditional UPDATE, so of two workers answering the same chat
        at once exactly one wins (the row lock holds until this request's transaction ends)."""
        result = await session.execute(
            update(Chat)
            .where(
                Chat.id == chat.id,
                (Chat.last_sticker_at.is_(None))
                | (Chat.last_sticker_at <= now - self.settings.sticker_cooldown_s),
            )
            .values(last_sticker_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(rowcount(result))

    async def _usage_prior(self, session: AsyncSession, chat: Chat, ids: np.ndarray) -> np.ndarray | None:
        """``usage_prior_weight`` × how often this chat sent or picked each sticker (logged chats)."""
        weight = self.settings.usage_prior_weight
        if weight <= 0 or not chat.logging_enabled:
            return None
        counts = await logged.usage_counts(session, chat.id)
        return weight * logged.usage_prior(ids, counts) if counts else None

    async def _rank(
        self,
        ranker: Ranker,
        query: np.ndarray,
        matrix: np.ndarray,
        scores: np.ndarray,
        k: int,
        prior: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by the dual encoder; models with a matching head re-rank the best ``rerank_top`` first.
        ``prior`` is added to the final scores (the dual encoder's, or the re-ranking logits)."""
        rerank = getattr(ranker, "rerank_scores", None)
        if rerank is None or self.settings.rerank_top <= 0:
            if prior is not None:
                scores = scores + prior
            return top_k(scores, k), scores
        shortlist = top_k(scores if prior is None else scores + prior, max(k, self.settings.rerank_top))
        logits = await asyncio.to_thread(rerank, query, matrix[shortlist])
        if prior is not None:
            logits = logits + prior[shortlist]
        final = np.full_like(scores, -np.inf)
        final[shortlist] = logits
        return shortlist[np.argsort(-logits, kind="stable")][:k], final

    async def stored_suggestion(
        self, suggestion_id: int, chat: ChatRef, max_age_s: float | None = None
    ) -> StoredSuggestion | None:
        """A suggestion made in ``chat`` (by any worker sharing the database), with its items in rank order
        and the ranks already picked. None when it is another chat's, older than ``max_age_s``, or one of its
        stickers was deleted since."""
        async with self.sessions() as session:
            head = (
                await session.execute(
                    select(Suggestion.created_at, User.platform, User.platform_user_id, User.display_name)
                    .join(Chat, Chat.id == Suggestion.chat_id)
                    .outerjoin(User, User.id == Suggestion.requested_by)
                    .where(
                        Suggestion.id == suggestion_id,
                        Chat.platform == chat.platform,
                        Chat.platform_chat_id == str(chat.chat_id),
                    )
                )
            ).first()
            if head is None:
                return None
            created = head.created_at if head.created_at.tzinfo else head.created_at.replace(tzinfo=UTC)
            if max_age_s is not None and (utcnow() - created).total_seconds() > max_age_s:
                return None
            rows = (
                await session.execute(
                    select(SuggestionItem.rank, SuggestionItem.score, *_SHOWN_COLUMNS)
                    .join(Sticker, Sticker.id == SuggestionItem.sticker_id)
                    .join(Pack, Pack.id == Sticker.pack_id)
                    .where(SuggestionItem.suggestion_id == suggestion_id)
                    .order_by(SuggestionItem.rank)
                )
            ).all()
            picked_ids = set(
                (
                    await session.execute(
                        select(Feedback.sticker_id).where(
                            Feedback.suggestion_id == suggestion_id, Feedback.kind == "picked"
                        )
                    )
                ).scalars()
            )
        items = [self._shown(r.rank, r.score, r) for r in rows]
        if not items or [i.rank for i in items] != list(range(len(items))):
            return None
        requester = (
            UserRef(head.platform, head.platform_user_id, head.display_name)
            if head.platform_user_id
            else None
        )
        return StoredSuggestion(
            suggestion_id, requester, created, items, {i.rank for i in items if i.sticker_id in picked_ids}
        )

    async def feedback(
        self,
        suggestion_id: int | None,
        sticker_id: int,
        chat: ChatRef,
        user: UserRef | None,
        kind: str = "picked",
    ) -> None:
        async with self.sessions.begin() as session:
            c = await self._chat(session, chat)
            assert c is not None
            u = await self._user(session, user)
            session.add(
                Feedback(
                    suggestion_id=suggestion_id,
                    chat_id=c.id,
                    user_id=u.id if u else None,
                    sticker_id=sticker_id,
                    kind=kind,
                )
            )
            if c.logging_enabled and kind in ("picked", "inline"):  # a retraining sample
                await self._log_pick(session, c, u, suggestion_id, sticker_id)

    async def _log_pick(
        self, session: AsyncSession, c: Chat, u: User | None, suggestion_id: int | None, sticker_id: int
    ) -> None:
        """A pick after /sticker: the dialogue the suggestion was made for, and what it showed."""
        shown: list[int] | None = None
        upto: int | None = None
        if suggestion_id is not None:
            sug = await session.get(Suggestion, suggestion_id)
            if sug is not None and sug.chat_id == c.id:
                upto = sug.last_message_id
                shown = list(
                    (
                        await session.execute(
                            select(SuggestionItem.sticker_id)
                            .where(SuggestionItem.suggestion_id == suggestion_id)
                            .order_by(SuggestionItem.rank)
                        )
                    ).scalars()
                )
        turns = _since_opt_in(c, await self.history.recent(session, c.id))
        if upto is not None:
            turns = [t for t in turns if t.message_id <= upto]
        if not turns:
            return
        session.add(
            TrainingSample(
                chat_id=c.id,
                user_id=u.id if u else None,
                sticker_id=sticker_id,
                kind=logged.PICKED,
                suggestion_id=suggestion_id if shown is not None else None,
                context=logged.snapshot(turns),
                shown=shown,
            )
        )

    async def has_chat_sticker(self, chat: ChatRef, sticker: str) -> bool:
        """Is ``sticker`` (a platform sticker id) one of the chat's enabled packs' stickers?"""
        async with self.sessions() as session:
            c = await self._chat(session, chat, create=False)
            if c is None:
                return False
            return await logged.find_chat_sticker(session, c.id, sticker, chat.platform) is not None

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
        """A user sent a sticker. Where the chat's logging is on and the sticker is one of its packs'
        (``sticker``: the platform's stable sticker id, or the database id as an int; ``packs_from`` as in
        :meth:`suggest`), keep it with the dialogue before it as a retraining sample. Returns the sample id,
        or None when nothing was kept (logging off, unknown sticker, no dialogue yet)."""
        async with self.sessions.begin() as session:
            c = await self._chat(session, chat)
            assert c is not None
            if not c.logging_enabled:
                return None
            pack_chat = c if packs_from is None else await self._chat(session, packs_from)
            assert pack_chat is not None
            s = await logged.find_chat_sticker(session, pack_chat.id, sticker, chat.platform)
            if s is None:
                return None
            turns = _since_opt_in(c, await self.history.recent(session, c.id))
            if not turns:
                return None
            u = await self._user(session, user)
            sample = TrainingSample(
                chat_id=c.id,
                user_id=u.id if u else None,
                sticker_id=s.id,
                kind=logged.SENT,
                platform_message_id=message_id,
                context=logged.snapshot(turns),
            )
            if at is not None:
                sample.created_at = at
            session.add(sample)
            await session.flush()
            return sample.id

    async def logged_samples(
        self, since: datetime | None = None, chats: Sequence[str] = ()
    ) -> list[logged.LoggedSample]:
        """What `stickerpick data export` may write (chats with logging on, oldest first)."""
        async with self.sessions() as session:
            return await logged.logged_samples(session, since, chats)

    async def recent_chat_for(self, user: UserRef, within_s: float) -> ChatRef | None:
        """The chat this user last wrote in, if within ``within_s`` seconds (inline queries carry no chat)."""
        from datetime import timedelta

        async with self.sessions() as session:
            u = await self._user(session, user, create=False)
            if u is None:
                return None
            row = (
                await session.execute(
                    select(Chat.platform, Chat.platform_chat_id, Chat.title, Message.created_at)
                    .join(Message, Message.chat_id == Chat.id)
                    .where(Message.user_id == u.id, Chat.platform == user.platform)
                    .order_by(Message.id.desc())
                    .limit(1)
                )
            ).first()
        if row is None:
            return None
        created = row[3] if row[3].tzinfo else row[3].replace(tzinfo=utcnow().tzinfo)
        if utcnow() - created > timedelta(seconds=within_s):
            return None
        return ChatRef(row[0], row[1], row[2])

    # ------------------------------------------------------------------ chats of a user (Telegram)
    async def chats_of(self, user: UserRef, limit: int = 20) -> list[ChatRef]:
        """The chats this user has written in (their kept history), most recent first: where a platform
        adapter may offer to add a pack the user sent it privately. Chats other than groups are included;
        the adapter decides where the user may act (e.g. is an admin)."""
        async with self.sessions() as session:
            u = await self._user(session, user, create=False)
            if u is None:
                return []
            last = func.max(Message.id).label("last")
            rows = (
                await session.execute(
                    select(Chat.platform, Chat.platform_chat_id, Chat.title, last)
                    .join(Message, Message.chat_id == Chat.id)
                    .where(Message.user_id == u.id, Chat.platform == user.platform)
                    .group_by(Chat.id, Chat.platform, Chat.platform_chat_id, Chat.title)
                    .order_by(last.desc())
                    .limit(limit)
                )
            ).all()
        return [ChatRef(platform, chat_id, title) for platform, chat_id, title, _ in rows]

    async def _sendable_subset(
        self, session: AsyncSession, chat: Chat, mat: _ChatMatrix
    ) -> _ChatMatrix | None:
        """The part of a chat's sticker matrix that has a platform file id (not cached: a view)."""
        unsendable = (
            await session.execute(
                select(Sticker.id)
                .join(ChatPack, ChatPack.pack_id == Sticker.pack_id)
                .where(ChatPack.chat_id == chat.id, Sticker.platform_file_id.is_(None))
            )
        ).scalars()
        keep = ~np.isin(mat.ids, np.fromiter(unsendable, dtype=np.int64))
        if not keep.any():
            return None
        return _ChatMatrix(mat.ids[keep], mat.matrix[keep])

    async def apply_retention(self, platform: str | None = None) -> int:
        """Apply the history retention policy to every chat (of one platform), now: a quiet chat's old
        messages go too, not only when new ones arrive. Returns how many messages were deleted."""
        async with self.sessions.begin() as session:
            q = select(Chat.id)
            if platform:
                q = q.where(Chat.platform == platform)
            total = 0
            for (chat_id,) in (await session.execute(q)).all():
                total += await self.history.apply_retention(session, chat_id)
                self.writer.reset_retention(chat_id)
        if total:  # expired messages leave no copy in the WAL either (issue 14)
            await self._scrub_wal()
        return total

    # ------------------------------------------------------------------ privacy
    async def set_logging(self, chat: ChatRef, enabled: bool) -> None:
        async with self.sessions.begin() as session:
            c = await self._chat(session, chat)
            assert c is not None
            if enabled and not c.logging_enabled:  # issue 14: nothing written before the opt-in is kept
                newest = (await session.execute(select(func.max(Message.id)))).scalar()
                c.logging_after_message = int(newest or 0)
            c.logging_enabled = enabled
            if not enabled:  # opting out deletes what was logged for retraining
                await session.execute(delete(TrainingSample).where(TrainingSample.chat_id == c.id))
        if not enabled:
            await self._scrub_wal()

    async def logging_enabled(self, chat: ChatRef) -> bool:
        async with self.sessions() as session:
            c = await self._chat(session, chat, create=False)
            return bool(c and c.logging_enabled)

    async def forget(self, user: UserRef) -> int:
        """Delete everything kept about a user in every chat. Returns the number of messages deleted."""
        async with self.sessions.begin() as session:
            u = await self._user(session, user, create=False)
            if u is None:
                return 0
            n = rowcount(await session.execute(delete(Message).where(Message.user_id == u.id)))
            await session.execute(delete(Feedback).where(Feedback.user_id == u.id))
            await logged.forget_user(session, u.id)  # their samples and their turns in others'
            await session.execute(delete(Suggestion).where(Suggestion.requested_by == u.id))
            await session.execute(update(ChatPack).where(ChatPack.added_by == u.id).values(added_by=None))
            await session.delete(u)
        self._forget_ids(user=user)
        await self._scrub_wal()
        return int(n)

    async def _scrub_wal(self) -> None:
        """Issue 14: after a deletion people asked for, no copy of it may stay in SQLite's WAL (deleted pages
        are zeroed by ``secure_delete``, the checkpoint writes them over the old ones and empties the WAL)."""
        try:
            if not await checkpoint_truncate(self.engine):
                log.warning(
                    "the database's WAL is still read by another process; the next forget or retention run empties it"
                )
        except Exception:  # the deletion itself is committed; never fail the user's request over this
            log.warning("could not checkpoint the database's WAL", exc_info=True)


async def _bump_chats_of(session: AsyncSession, pack_id: int) -> None:
    """Chats using this pack rebuild their sticker matrix (every worker: the version is in the database)."""
    await session.execute(
        update(Chat)
        .where(Chat.id.in_(select(ChatPack.chat_id).where(ChatPack.pack_id == pack_id)))
        .values(packs_version=Chat.packs_version + 1)
        .execution_options(synchronize_session=False)
    )


def _since_opt_in(chat: Chat, turns: list[Turn]) -> list[Turn]:
    """Issue 14: only the turns written while the chat's logging was on may go into a training sample."""
    after = chat.logging_after_message
    return turns if after is None else [t for t in turns if t.message_id > after]


async def open_service(settings: Settings, threads: int = 0) -> StickerService:
    """The one way adapters get a service: the serving model from the settings, schema checked."""
    from engine.ranking import load_ranker

    kind = "auto" if settings.ranker in ("auto", "pbr") else settings.ranker
    ranker = load_ranker(
        kind, settings.serving_model_dir(), max_turns=settings.history_turns, threads=threads
    )
    service = await StickerService.open(settings, ranker, default_packs=settings.default_packs)
    service._model_dir = settings.serving_model_dir()  # `check_model` compares against it
    return service
