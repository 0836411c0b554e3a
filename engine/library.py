"""Sticker packs: import from a folder or zip, or from a platform's set, through the one bounded decoder, into
the database.

A pack's metadata may come from ``pack.json`` ({"name", "title", "stickers": [{"file", "id", "emoji", "tags"}]}),
from StickerChat's ``emoji_mapping.txt`` ("<sticker_id>\\t<emoji>"), or from file names that are emoji code
points (``1f602.png``) or contain an emoji. Bad files are reported and skipped (``ImportReport.skipped``, each
with a typed :class:`~engine.errors.SkipReason`); a pack with no good sticker is refused and changes nothing.
Every refusal is a typed :class:`~engine.errors.PackError` that the adapters word. With ``commit_every`` a new
pack is committed in batches while it is ``importing`` (never served): a killed import keeps what it stored, and
running it again skips those and finishes the pack.

The readers of files are in :mod:`engine._pack_sources`, the import itself in :mod:`engine._importer`; this
module is what callers import.
"""

from __future__ import annotations

import io
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from engine._importer import MAX_LABEL_CHARS, Captions, ImportBudget, ImportItem, ImportReport, PackImporter
from engine._pack_sources import (
    IMAGE_SUFFIXES,
    MAX_METADATA_BYTES,
    METADATA_FILES,
    PackEntry,
    emoji_from_filename,
    iter_pack_source,
    parse_pack_json,
    words_from_filename,
)
from engine.db import Pack
from engine.errors import (
    BadPackName,
    EmbeddingFailed,
    InvalidPackJson,
    MetadataProblem,
    NotAPackSource,
    NothingToImport,
    PackBusy,
    PackError,
    PackJsonProblem,
    PackNotEnabled,
    PackSourceMissing,
    SkipKind,
    Skipped,
    SkipReason,
    TooManyImages,
    TooManyStickers,
    UnknownPack,
    UnreadableMetadata,
)
from engine.media import (
    CorruptMedia,
    DecodedSticker,
    DecodeLimits,
    MediaTooLarge,
    UnsupportedMedia,
    decode_sticker_async,
)
from engine.store import MediaStore

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_LABEL_CHARS",
    "MAX_METADATA_BYTES",
    "METADATA_FILES",
    "PACK_NAME_RE",
    "BadPackName",
    "EmbeddingFailed",
    "ImportBudget",
    "ImportItem",
    "ImportReport",
    "InvalidPackJson",
    "MetadataProblem",
    "NotAPackSource",
    "NothingToImport",
    "PackBusy",
    "PackEntry",
    "PackError",
    "PackJsonProblem",
    "PackNotEnabled",
    "PackSourceMissing",
    "PlatformSticker",
    "SkipKind",
    "SkipReason",
    "Skipped",
    "TooManyImages",
    "TooManyStickers",
    "UnknownPack",
    "UnreadableMetadata",
    "emoji_from_filename",
    "import_pack",
    "import_platform_pack",
    "iter_pack_source",
    "parse_pack_json",
    "slugify_pack_name",
    "validate_pack_name",
    "words_from_filename",
]

PACK_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def slugify_pack_name(raw: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", raw.strip()).strip("-_")[:64]


def validate_pack_name(name: str) -> str:
    # fullmatch: ``$`` in the pattern also matches before a final newline ("food\n" passed)
    if not isinstance(name, str) or not PACK_NAME_RE.fullmatch(name):
        raise BadPackName(name)
    return name


async def _decode_entry(entry: PackEntry, limits: DecodeLimits) -> DecodedSticker:
    data = entry.read(limits.max_bytes)
    if entry.file.lower().endswith(".npy"):
        return _decode_npy(data, limits)
    return await decode_sticker_async(data, limits)


def _decode_npy(data: bytes, limits: DecodeLimits) -> DecodedSticker:  # StickerChat's own HxWx3 uint8 arrays
    import numpy as np
    from PIL import Image

    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:
        raise CorruptMedia(f"not a readable .npy array: {exc}") from exc
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise UnsupportedMedia(f".npy stickers must be HxWx3 uint8 arrays, got {arr.dtype} {arr.shape}")
    if arr.shape[0] * arr.shape[1] > limits.max_pixels:
        raise MediaTooLarge(
            f"image is {arr.shape[1]}×{arr.shape[0]} pixels; the limit is {limits.max_pixels}"
        )
    img = Image.fromarray(arr).convert("RGBA")
    return DecodedSticker(img, "static", "npy", img.width, img.height)


@dataclass(frozen=True)
class PlatformSticker:
    """A sticker that arrives from a platform (Telegram set, Discord guild) rather than from files."""

    sticker_id: str  # the platform's stable id (Telegram file_unique_id, Discord sticker id)
    file_id: str | None
    emoji: str | None
    tags: tuple[str, ...] = ()
    # Called only for stickers the library does not have yet: returns the file's bytes (may download).
    fetch: Callable[[], Awaitable[bytes]] | None = None
    data: bytes | None = None
    name: str | None = None  # a display name for reports


def _file_item(entry: PackEntry, limits: DecodeLimits, budget: ImportBudget | None) -> ImportItem:
    async def load() -> DecodedSticker:
        if budget is None:
            return await _decode_entry(entry, limits)

        def counted(limit: int) -> bytes:
            data = entry.read(limit)
            budget.charge(len(data))
            return data

        return await _decode_entry(
            PackEntry(entry.file, entry.sticker_id, entry.emoji, entry.tags, counted), limits
        )

    return ImportItem(entry.file, entry.sticker_id, None, entry.emoji, entry.tags, load)


def _platform_item(s: PlatformSticker, limits: DecodeLimits, budget: ImportBudget | None) -> ImportItem:
    async def load() -> DecodedSticker:
        data = s.data if s.data is not None else (await s.fetch() if s.fetch else b"")
        if budget is not None:
            budget.charge(len(data))
        return await decode_sticker_async(data, limits)

    return ImportItem(s.name or s.sticker_id, s.sticker_id, s.file_id, s.emoji, s.tags, load)


async def import_pack(
    session: AsyncSession,
    store: MediaStore,
    source: Path,
    limits: DecodeLimits,
    name: str | None = None,
    title: str | None = None,
    platform: str = "local",
    max_stickers: int = 2000,
    progress: Callable[[int, int], None] | None = None,
    captions: Captions | None = None,
    commit_every: int = 0,
    budget: ImportBudget | None = None,
    label: str | None = None,
) -> tuple[Pack, ImportReport]:
    """Import (or refresh) a pack from a folder or zip. The caller commits (``commit_every``: see
    :class:`~engine._importer.PackImporter`); on PackError nothing was added. ``captions``: an OCR reader of
    the decoded still (engine.ocr), or None. ``label``: how errors name the source (default: the path as
    given; a caller that imports from a temporary path passes what the user called it)."""
    meta, entries, total = iter_pack_source(Path(source), max_stickers, limits.max_bytes, label=label)
    pack_name = validate_pack_name(name or meta.get("name") or slugify_pack_name(Path(source).stem) or "pack")
    importer = PackImporter(
        session,
        store,
        pack_name=pack_name,
        title=title or meta.get("title") or meta.get("name"),
        source=str(source),
        platform=platform,
        captions=captions,
        commit_every=commit_every,
        budget=budget,
    )
    return await importer.run((_file_item(e, limits, budget) for e in entries), total, progress)


async def import_platform_pack(
    session: AsyncSession,
    store: MediaStore,
    stickers: list[PlatformSticker],
    limits: DecodeLimits,
    name: str,
    title: str | None,
    platform: str,
    source: str | None = None,
    max_stickers: int = 2000,
    progress: Callable[[int, int], None] | None = None,
    captions: Captions | None = None,
    commit_every: int = 0,
    budget: ImportBudget | None = None,
) -> tuple[Pack, ImportReport]:
    """Import (or refresh) a platform's sticker set: only stickers not yet in the pack are fetched."""
    if len(stickers) > max_stickers:
        raise TooManyStickers(len(stickers), max_stickers)
    importer = PackImporter(
        session,
        store,
        pack_name=validate_pack_name(name),
        title=title,
        source=source,
        platform=platform,
        captions=captions,
        commit_every=commit_every,
        budget=budget,
    )
    return await importer.run((_platform_item(s, limits, budget) for s in stickers), len(stickers), progress)
