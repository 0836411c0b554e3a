"""The pack life cycle: import (files or a platform set) and embed, enable and remove per chat, delete, list."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine import metrics
from engine.db import Chat, ChatPack, Pack, Sticker
from engine.errors import EmbeddingFailed, PackBusy, PackNotEnabled, UnknownPack
from engine.library import (
    ImportBudget,
    ImportReport,
    PlatformSticker,
    import_pack,
    import_platform_pack,
    validate_pack_name,
)
from engine.media import DecodeLimits
from engine.ranking import Ranker
from engine.service._embeddings import EmbeddingCache
from engine.service._identities import Identities
from engine.service._types import ChatRef, PackInfo, UserRef
from engine.settings import Settings
from engine.store import MediaStore

log = logging.getLogger(__name__)

IMPORT_BATCH = 64  # stickers per commit while a pack is imported


class Packs:
    """The library's packs and which chats use them. An import is committed in batches (a killed import
    keeps its work and resumes when run again); a pack is served only once its stickers are embedded."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        store: MediaStore,
        limits: DecodeLimits,
        identities: Identities,
        embeddings: EmbeddingCache,
        ranker: Callable[[], Ranker],
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.store = store
        self.limits = limits
        self.identities = identities
        self.embeddings = embeddings
        self._ranker = ranker  # the model served now (it may be swapped between two calls)
        self._captions: Any = None

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

    # ------------------------------------------------------------------ import
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
        errors name the source (default: the path as given; pass what the user called a temporary copy)."""
        return await self._import_and_embed(
            import_pack, source, name=name, title=title, platform=platform, progress=progress, label=label
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
        """The library import (files or a platform set), committed every ``IMPORT_BATCH`` new stickers, then
        embed the new stickers. A new pack turns ``ready`` (served) only once they are embedded, so no chat is
        ever served a half-embedded pack; if embedding fails, the pack (new or refreshed) is left
        ``importing`` and running the import again finishes it. Another import of the same new pack running
        at once: :class:`PackBusy`."""
        pack_id, new_pack, report = await self._import_rows(importer, what, **kwargs)
        ranker = self._ranker()
        try:
            await self.embeddings.embed_pack(pack_id, ranker)
        except Exception as exc:  # e.g. a damaged image tower: the pack stays "importing", never served
            log.warning("embedding pack %s failed", pack_id, exc_info=True)
            await self._set_status(pack_id, "importing")
            raise EmbeddingFailed(ranker.version, type(exc).__name__) from None
        if new_pack:
            await self._set_status(pack_id, "ready")
        return report

    async def _import_rows(
        self, importer: Callable[..., Any], what: Any, **kwargs: Any
    ) -> tuple[int, bool, ImportReport]:
        """The import's pack and sticker rows, committed; a new pack is left ``importing`` (not served).
        Returns (pack id, whether the pack is new, the report)."""
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
                if new_pack:  # served ("ready") only once its embeddings exist
                    pack.status = "importing"
                await bump_chats_of(session, pack_id)
                await session.commit()
        except (IntegrityError, OperationalError) as exc:
            # another import of the same pack got there first (its pack or sticker rows exist now)
            if isinstance(exc, OperationalError) and "locked" not in str(exc.orig):
                raise
            raise PackBusy(kwargs.get("name")) from None
        return pack_id, new_pack, report

    async def _set_status(self, pack_id: int, status: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(update(Pack).where(Pack.id == pack_id).values(status=status))
            await bump_chats_of(session, pack_id)

    # ------------------------------------------------------------------ chats and the library
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
        report = await self.import_pack(source, name=name, title=title, progress=progress, label=label)
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
            c = await self.identities.existing_chat(session, chat)
            u = await self.identities.user(session, by)
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
            c = await self.identities.chat(session, chat, create=False)
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
                c = await self.identities.chat(session, chat, create=False)
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


async def bump_chats_of(session: AsyncSession, pack_id: int) -> None:
    """Chats using this pack rebuild their sticker matrix (every worker: the version is in the database)."""
    await session.execute(
        update(Chat)
        .where(Chat.id.in_(select(ChatPack.chat_id).where(ChatPack.pack_id == pack_id)))
        .values(packs_version=Chat.packs_version + 1)
        .execution_options(synchronize_session=False)
    )
