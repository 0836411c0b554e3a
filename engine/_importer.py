"""The import of a pack's items into the database: new stickers decoded and stored, known ones kept, bad ones
skipped with a typed reason (:class:`~engine.errors.SkipReason`), all within an :class:`ImportBudget`.

With ``commit_every`` a new pack is committed in batches while it is ``importing`` (never served): a killed
import keeps what it stored, and running it again skips those and finishes the pack.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from PIL import Image
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine._pack_sources import LinkRefused
from engine.db import Pack, Sticker
from engine.errors import NothingToImport, SkipKind, Skipped, SkipReason
from engine.media import (
    CorruptMedia,
    DecodedSticker,
    DecodeTimeout,
    MediaError,
    MediaTooLarge,
    UnsupportedMedia,
    to_png_bytes,
)
from engine.preprocess import clean_label, printable
from engine.store import MediaStore

MAX_LABEL_CHARS = 200  # a file name as a report shows it
MAX_DETAIL_CHARS = 500  # a decoder's or downloader's words, as a report keeps them

Captions = Callable[[Image.Image], Awaitable[str | None]]  # an OCR reader of the decoded still, or None


class ImportBudget:
    """What one import may cost the main process, so that a huge or slow pack cannot hold it: bytes read,
    and seconds. Checked before each sticker; once spent, the rest are skipped (a re-run resumes with them)."""

    def __init__(self, max_bytes: int, max_seconds: float) -> None:
        self.max_bytes, self.max_seconds = max_bytes, max_seconds
        self.used_bytes = 0
        self.started = time.monotonic()

    def spent(self) -> SkipReason | None:
        if self.used_bytes >= self.max_bytes:
            return SkipReason(SkipKind.BYTE_BUDGET, limit=self.max_bytes)
        if time.monotonic() - self.started >= self.max_seconds:
            return SkipReason(SkipKind.TIME_BUDGET, limit=self.max_seconds)
        return None

    def charge(self, n: int) -> None:
        self.used_bytes += n


@dataclass
class ImportReport:
    pack_name: str
    added: int = 0
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    served_before: bool = False  # the pack existed and was ready before this import (a refresh)


@dataclass(frozen=True)
class ImportItem:
    """One sticker to import, from files or a platform: its raw (untrusted) label, id, platform file id,
    emoji and tags, and how to decode it (called only when the pack does not have it yet)."""

    label: str
    sticker_id: str
    file_id: str | None
    emoji: str | None
    tags: tuple[str, ...]
    load: Callable[[], Awaitable[DecodedSticker]]


# The decoder's error classes → why a sticker was skipped (first match; anything else is UNREADABLE).
_MEDIA_SKIPS: tuple[tuple[type[MediaError], SkipKind], ...] = (
    (LinkRefused, SkipKind.LINK),
    (MediaTooLarge, SkipKind.TOO_LARGE),
    (UnsupportedMedia, SkipKind.UNSUPPORTED),
    (CorruptMedia, SkipKind.DAMAGED),
    (DecodeTimeout, SkipKind.TIMEOUT),
)


def media_skip(exc: MediaError) -> SkipReason:
    kind = next((k for cls, k in _MEDIA_SKIPS if isinstance(exc, cls)), SkipKind.UNREADABLE)
    return SkipReason(kind, detail=printable(str(exc), MAX_DETAIL_CHARS))


class PackImporter:
    """Adds the items not yet in one pack (``platform``, ``pack_name``). With ``commit_every`` new stickers
    are committed in batches of that size while a new pack stays ``importing`` (never served), so a re-run
    after a crash finds them and resumes. The caller commits the rest, with the pack turned ``ready``.
    Without it, the caller's one transaction holds everything (on PackError nothing was added)."""

    def __init__(
        self,
        session: AsyncSession,
        store: MediaStore,
        *,
        pack_name: str,
        title: str | None,
        source: str | None,
        platform: str,
        captions: Captions | None = None,
        commit_every: int = 0,
        budget: ImportBudget | None = None,
    ) -> None:
        self.session, self.store = session, store
        self.pack_name, self.source, self.platform = pack_name, source, platform
        self.title = clean_label(title, 256)  # text from a pack.json or a platform is untrusted
        self.captions, self.commit_every, self.budget = captions, commit_every, budget
        self.report = ImportReport(pack_name)
        self.pack: Pack | None = None
        self.existing: dict[str, Sticker] = {}
        self.pending: list[Sticker] = []
        self.seen: set[str] = set()

    async def run(
        self, items: Iterable[ImportItem], total: int, progress: Callable[[int, int], None] | None = None
    ) -> tuple[Pack, ImportReport]:
        await self._load_existing()
        for i, item in enumerate(items):
            if progress:
                progress(i, total)
            await self._add(i, item)
        if progress:
            progress(total, total)
        if not self.pending and not self.report.added and not self.existing:
            raise NothingToImport(self.pack_name, self.report.skipped)
        await self._save_batch(last=True)  # the caller commits it together with the status
        assert self.pack is not None
        self.pack.status = "ready"
        await self.session.flush()
        return self.pack, self.report

    async def _load_existing(self) -> None:
        query = select(Pack).where(Pack.platform == self.platform, Pack.name == self.pack_name)
        self.pack = (await self.session.execute(query)).scalar_one_or_none()
        self.report.served_before = self.pack is not None and self.pack.status == "ready"
        if self.pack is not None:
            rows = await self.session.execute(select(Sticker).where(Sticker.pack_id == self.pack.id))
            self.existing = {s.platform_sticker_id: s for s in rows.scalars()}

    def _skip(self, label: str, reason: SkipReason) -> None:
        self.report.skipped.append(Skipped(label, reason))

    async def _add(self, position: int, item: ImportItem) -> None:
        label = printable(item.label, MAX_LABEL_CHARS)  # a name like "\x1b[2J.png" drives terminals
        sticker_id = clean_label(item.sticker_id, 128)
        if sticker_id is None:
            return self._skip(label, SkipReason(SkipKind.NO_ID))
        if sticker_id in self.seen:
            return self._skip(label, SkipReason(SkipKind.DUPLICATE_ID, sticker_id=sticker_id))
        self.seen.add(sticker_id)
        file_id = clean_label(item.file_id, 256)
        if sticker_id in self.existing:
            self.report.unchanged += 1
            old = self.existing[sticker_id]
            if file_id and old.platform_file_id != file_id:  # Telegram file_ids change: keep the newest
                old.platform_file_id = file_id
            return None
        spent = self.budget.spent() if self.budget is not None else None
        if spent is not None:
            return self._skip(label, spent)
        try:
            decoded = await item.load()
        except MediaError as exc:
            return self._skip(label, media_skip(exc))
        except (OSError, TimeoutError) as exc:  # a failed download is one skipped sticker, not a failed pack
            detail = printable(str(exc), MAX_DETAIL_CHARS)
            return self._skip(label, SkipReason(SkipKind.FETCH_FAILED, detail=detail))
        self.pending.append(await self._sticker(position, item, sticker_id, file_id, decoded))
        if self.commit_every and len(self.pending) >= self.commit_every:
            await self._save_batch()
        return None

    async def _sticker(
        self, position: int, item: ImportItem, sticker_id: str, file_id: str | None, decoded: DecodedSticker
    ) -> Sticker:
        sha = self.store.put(to_png_bytes(decoded.image))  # atomic (temp file + rename): never half a picture
        caption = await self.captions(decoded.image) if self.captions is not None else None
        return Sticker(
            platform_sticker_id=sticker_id,
            platform_file_id=file_id,
            emoji=clean_label(item.emoji, 64),
            tags=[t for t in (clean_label(x, 64) for x in item.tags) if t][:32],
            caption=caption,
            media_sha256=sha,
            kind=decoded.kind,
            source_format=decoded.source_format,
            width=decoded.width,
            height=decoded.height,
            position=position,
        )

    async def _save_batch(self, last: bool = False) -> None:
        """Store what is decoded so far (committed unless ``last``): a killed import keeps it, and a re-run
        resumes there."""
        if not self.pending:
            return
        if self.pack is None:  # a new pack: created with its first good sticker, served only once complete
            self.pack = Pack(
                platform=self.platform,
                name=self.pack_name,
                title=self.title or self.pack_name,
                source=self.source,
                status="importing",
            )
            self.session.add(self.pack)
            await self.session.flush()
        for s in self.pending:
            s.pack_id = self.pack.id
            self.session.add(s)
        self.report.added += len(self.pending)
        self.pending.clear()
        await self.session.flush()
        if self.commit_every and not last:
            await self.session.commit()


__all__ = ["Captions", "ImportBudget", "ImportItem", "ImportReport", "PackImporter", "media_skip"]
