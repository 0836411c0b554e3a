"""Sticker packs: import from a folder or zip, through the one bounded decoder, into the database.

A pack's metadata may come from ``pack.json`` ({"name", "title", "stickers": [{"file", "id", "emoji", "tags"}]}),
from StickerChat's ``emoji_mapping.txt`` ("<sticker_id>\\t<emoji>"), or from file names that are emoji code
points (``1f602.png``) or contain an emoji. Bad files are reported and skipped; a pack with no good sticker is
refused and changes nothing. With ``commit_every`` a new pack is committed in batches while it is ``importing``
(never served): a killed import keeps what it stored, and running it again skips those and finishes the pack.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import time
import zipfile
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import emoji as emoji_pkg
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import Pack, Sticker
from engine.errors import EmbeddingFailed as EmbeddingFailed  # re-exported: callers catch them here too
from engine.errors import PackBusy as PackBusy
from engine.errors import PackError
from engine.media import DecodeLimits, MediaError, decode_sticker_async, to_png_bytes
from engine.preprocess import clean_label, printable
from engine.store import MediaStore

IMAGE_SUFFIXES = {".png", ".webp", ".jpg", ".jpeg", ".gif", ".apng", ".tgs", ".webm", ".npy"}
PACK_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
METADATA_FILES = ("pack.json", "emoji_mapping.txt")
MAX_METADATA_BYTES = 1_000_000  # pack.json / emoji_mapping.txt, in a folder as in a zip
MAX_LABEL_CHARS = 200  # a file name as a report shows it


class _StickerMeta(BaseModel):
    """One entry of ``pack.json``'s ``stickers``; unknown fields are ignored, wrong types refused."""

    model_config = ConfigDict(extra="ignore", strict=True)
    file: str = Field(max_length=1024)
    id: str | int | None = None
    emoji: str | None = Field(default=None, max_length=256)
    tags: list[str | int] = Field(default_factory=list, max_length=256)


class _PackMeta(BaseModel):
    """The schema of ``pack.json`` (README: ``{"name", "title", "stickers": [{"file", "id", "emoji", "tags"}]}``)."""

    model_config = ConfigDict(extra="ignore", strict=True)
    name: str | None = Field(default=None, max_length=256)
    title: str | None = Field(default=None, max_length=1024)
    stickers: list[_StickerMeta] = Field(default_factory=list, max_length=100_000)


def parse_pack_json(text: str) -> dict[str, Any]:
    """``pack.json`` → {"name", "title", "stickers": [...]}, or one PackError that says what is wrong."""
    try:
        raw = json.loads(text)
    except RecursionError:
        raise PackError("pack.json is nested too deeply to be read") from None
    except json.JSONDecodeError as exc:
        raise PackError(f"pack.json is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise PackError("pack.json must hold a JSON object")
    try:
        meta = _PackMeta.model_validate(raw)
    except RecursionError:
        raise PackError("pack.json is nested too deeply to be read") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise PackError(printable(f"pack.json: {where}: {first['msg']}{more}")) from None
    return meta.model_dump()


class ImportBudget:
    """What one import may cost the main process (issue 14): bytes read, and seconds. Checked before each
    sticker; once spent, the rest are skipped (a re-run resumes with them)."""

    def __init__(self, max_bytes: int, max_seconds: float) -> None:
        self.max_bytes, self.max_seconds = max_bytes, max_seconds
        self.used_bytes = 0
        self.started = time.monotonic()

    def spent(self) -> str | None:
        if self.used_bytes >= self.max_bytes:
            return f"the import read its limit of {self.max_bytes} bytes; run it again to continue"
        if time.monotonic() - self.started >= self.max_seconds:
            return f"the import used its {self.max_seconds:g} s; run it again to continue"
        return None

    def charge(self, n: int) -> None:
        self.used_bytes += n


@dataclass
class ImportReport:
    pack_name: str
    added: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    served_before: bool = False  # the pack existed and was ready before this import (a refresh)


@dataclass(frozen=True)
class PackEntry:
    file: str
    sticker_id: str
    emoji: str | None
    tags: tuple[str, ...]
    read: Callable[[int], bytes]  # read(max_bytes) -> bytes (raises MediaError past the limit)


def slugify_pack_name(raw: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", raw.strip()).strip("-_")[:64]
    return slug


def validate_pack_name(name: str) -> str:
    # fullmatch: ``$`` in the pattern also matches before a final newline ("food\n" passed)
    if not isinstance(name, str) or not PACK_NAME_RE.fullmatch(name):
        raise PackError(
            f"Pack names use letters, digits, '_' and '-' (at most 64, starting with a letter or digit); "
            f"{str(name)[:80]!r} is not one."
        )
    return name


def emoji_from_filename(stem: str) -> str | None:
    """'1f602' or '1f469-200d-1f4bb' → the emoji; a stem containing an emoji → the first one."""
    if re.fullmatch(r"[0-9a-fA-F]{4,6}(-[0-9a-fA-F]{4,6})*", stem):
        try:
            chars = "".join(chr(int(cp, 16)) for cp in stem.split("-"))
        except ValueError:
            return None
        if emoji_pkg.is_emoji(chars) or emoji_pkg.is_emoji(chars.replace("\ufe0f", "")):
            return chars
    found = emoji_pkg.emoji_list(stem)
    return found[0]["emoji"] if found else None


# Code points and hashes (with a digit: "face" and "cafe" are words), or no letters at all.
_HEXLIKE = re.compile(r"(?=.*\d)(?:[0-9a-fA-F]{4,6}(-[0-9a-fA-F]{4,6})*|[0-9a-fA-F-]{8,})|[\W\d_]*")


def words_from_filename(stem: str) -> str | None:
    """The words of a file name, as a sticker's text: 'happy_cat-2' → 'happy cat'. None for names that say
    nothing: code points ('1f602'), hashes and ids ('a3f9c2e1', '0042'), camera names ('IMG_0042')."""
    if _HEXLIKE.fullmatch(stem):
        return None
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", stem)  # camelCase → camel Case
    words = [w for w in re.split(r"[\W\d_]+", spaced) if len(w) > 1 or not w.isascii()]
    words = [w for w in words if w.lower() not in {"img", "image", "sticker", "stickers", "copy", "final"}]
    text = " ".join(words).lower()
    return text[:80] if text else None


def _read_limited(raw: bytes | None, opener: Callable[[], IO[bytes]], max_bytes: int) -> bytes:
    if raw is not None:
        return raw
    with opener() as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise MediaError(f"file is larger than the {max_bytes}-byte limit")
    return data


def _read_regular(path: Path, limit: int, error: type[Exception]) -> bytes:
    """At most ``limit`` bytes of a regular file, never through a symbolic link (O_NOFOLLOW), never a
    device, FIFO or /proc file."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise error(f"{path.name} cannot be opened ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{path.name} is not a regular file")
        if st.st_size > limit:
            raise error(f"{path.name} is {st.st_size} bytes; the limit is {limit}")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise error(f"{path.name} is larger than the {limit}-byte limit")
    return data


def _load_metadata(
    names: list[str], read_text: Callable[[str], str]
) -> tuple[dict, dict[str, dict], dict[str, str]]:
    meta: dict = {}
    by_file: dict[str, dict] = {}
    mapping: dict[str, str] = {}
    if "pack.json" in names:
        meta = parse_pack_json(read_text("pack.json"))
        for s in meta["stickers"]:
            by_file[s["file"]] = s
    if "emoji_mapping.txt" in names:
        for line in read_text("emoji_mapping.txt").splitlines():
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2 and parts[0].strip():
                mapping[parts[0].strip()] = parts[1].strip()
    return meta, by_file, mapping


def iter_pack_source(source: Path, max_files: int, max_bytes: int) -> tuple[dict, Iterator[PackEntry], int]:
    """(pack.json metadata, entries, number of entries) for a folder or a zip archive."""
    source = Path(source)
    if source.is_dir():
        # issue 14: links are never followed (a link may point out of the pack: /etc/passwd, another
        # user's pictures); every file is opened with O_NOFOLLOW and must be a regular file
        children = sorted(source.iterdir())
        links = [p for p in children if p.is_symlink()]
        files = [p for p in children if not p.is_symlink() and p.is_file()]
        names = [p.name for p in files]

        def read_text(name: str) -> str:
            data = _read_regular(source / name, MAX_METADATA_BYTES, PackError)
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PackError(f"{name} is not UTF-8 text ({exc.reason})") from None

        def opener_for(p: Path) -> Callable[[int], bytes]:
            def read(limit: int) -> bytes:
                return _read_regular(p, limit, MediaError)

            return read

        def refuse_link(limit: int) -> bytes:
            raise MediaError("a symbolic link: links are never followed out of a pack")

        members = [(p.name, opener_for(p)) for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        members += [(p.name, refuse_link) for p in links if p.suffix.lower() in IMAGE_SUFFIXES]
        for p in links:
            if p.name in METADATA_FILES:
                raise PackError(f"{p.name} is a symbolic link; links are never followed out of a pack")
    elif source.is_file() and zipfile.is_zipfile(source):
        zf = zipfile.ZipFile(source)
        infos = [i for i in zf.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
        names = [PurePosixPath(i.filename).name for i in infos]
        by_name = {PurePosixPath(i.filename).name: i for i in infos}

        def read_text(name: str) -> str:
            info = by_name[name]
            if info.file_size > MAX_METADATA_BYTES:
                raise PackError(f"{name} is larger than {MAX_METADATA_BYTES} bytes")
            try:
                with zf.open(info) as f:
                    data = f.read(MAX_METADATA_BYTES + 1)
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
                raise PackError(f"{name} cannot be read from the zip: {exc}") from None
            if len(data) > MAX_METADATA_BYTES:
                raise PackError(f"{name} is larger than {MAX_METADATA_BYTES} bytes")
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PackError(f"{name} is not UTF-8 text ({exc.reason})") from None

        def zip_opener(info: zipfile.ZipInfo) -> Callable[[int], bytes]:
            def read(limit: int) -> bytes:
                if info.file_size > limit:
                    raise MediaError(f"file is {info.file_size} bytes; the limit is {limit}")
                try:
                    return _read_limited(None, lambda: zf.open(info), limit)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:  # also covers CRC errors
                    raise MediaError(f"damaged zip member: {exc}") from exc
                except RuntimeError as exc:  # issue 14: encrypted ("password required")
                    raise MediaError(f"an encrypted zip member ({exc})") from None
                except NotImplementedError as exc:  # a compression method zipfile lacks (e.g. 93: zstd)
                    raise MediaError(f"an unsupported zip compression ({exc})") from None

            return read

        members = [
            (PurePosixPath(i.filename).name, zip_opener(i))
            for i in sorted(infos, key=lambda i: i.filename)
            if PurePosixPath(i.filename).suffix.lower() in IMAGE_SUFFIXES
        ]
    elif source.exists():
        raise PackError(f"{source} is neither a folder nor a zip archive of images")
    else:
        raise PackError(f"{source} does not exist")

    meta, by_file, mapping = _load_metadata(names, read_text)
    if len(members) > max_files:
        raise PackError(f"{source} holds {len(members)} images; a pack may have at most {max_files}")

    def entries() -> Iterator[PackEntry]:
        for name, read in members:
            stem = PurePosixPath(name).stem
            info = by_file.get(name, {})
            sticker_id = str(info.get("id") or stem)
            em = (
                info.get("emoji") or mapping.get(sticker_id) or mapping.get(stem) or emoji_from_filename(stem)
            )
            tags = tuple(str(t) for t in (info.get("tags") or []))
            if not tags:  # an upload's file name is often all the text it has: "happy_cat.png"
                words = words_from_filename(stem)
                tags = (words,) if words else ()
            yield PackEntry(name, sticker_id, em, tags, read)

    return meta, entries(), len(members)


def _charged(read: Callable[[int], bytes], budget: ImportBudget) -> Callable[[int], bytes]:
    def counted(limit: int) -> bytes:
        data = read(limit)
        budget.charge(len(data))
        return data

    return counted


async def _decode_entry(entry: PackEntry, limits: DecodeLimits):  # -> DecodedSticker
    data = entry.read(limits.max_bytes)
    if entry.file.lower().endswith(".npy"):
        return _decode_npy(data, limits)
    return await decode_sticker_async(data, limits)


def _decode_npy(data: bytes, limits: DecodeLimits):  # StickerChat's own HxWx3 uint8 arrays
    import numpy as np
    from PIL import Image

    from engine.media import DecodedSticker

    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:
        raise MediaError(f"not a readable .npy array: {exc}") from exc
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise MediaError(f".npy stickers must be HxWx3 uint8 arrays, got {arr.dtype} {arr.shape}")
    if arr.shape[0] * arr.shape[1] > limits.max_pixels:
        raise MediaError(f"image is {arr.shape[1]}×{arr.shape[0]} pixels; the limit is {limits.max_pixels}")
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
    captions: Callable[[Any], Awaitable[str | None]] | None = None,
    commit_every: int = 0,
    budget: ImportBudget | None = None,
) -> tuple[Pack, ImportReport]:
    """Import (or refresh) a pack from a folder or zip. The caller commits (``commit_every``: see
    :func:`_import_items`); on PackError nothing was added.
    ``captions``: an OCR reader of the decoded still (engine.ocr), or None."""
    meta, entries, total = iter_pack_source(Path(source), max_stickers, limits.max_bytes)
    pack_name = validate_pack_name(name or meta.get("name") or slugify_pack_name(Path(source).stem) or "pack")

    async def load(entry: PackEntry):  # -> DecodedSticker
        if budget is None:
            return await _decode_entry(entry, limits)
        counted = PackEntry(
            entry.file, entry.sticker_id, entry.emoji, entry.tags, _charged(entry.read, budget)
        )
        return await _decode_entry(counted, limits)

    items = ((e.file, e.sticker_id, None, e.emoji, e.tags, load, e) for e in entries)
    return await _import_items(
        session,
        store,
        items,
        total,
        pack_name,
        title or meta.get("title") or meta.get("name"),
        str(source),
        platform,
        progress,
        captions,
        commit_every,
        budget,
    )


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
    captions: Callable[[Any], Awaitable[str | None]] | None = None,
    commit_every: int = 0,
    budget: ImportBudget | None = None,
) -> tuple[Pack, ImportReport]:
    """Import (or refresh) a platform's sticker set: only stickers not yet in the pack are fetched."""
    if len(stickers) > max_stickers:
        raise PackError(f"the set has {len(stickers)} stickers; a pack may have at most {max_stickers}")

    async def load(s: PlatformSticker):  # -> DecodedSticker
        data = s.data if s.data is not None else (await s.fetch() if s.fetch else b"")
        if budget is not None:
            budget.charge(len(data))
        return await decode_sticker_async(data, limits)

    items = ((s.name or s.sticker_id, s.sticker_id, s.file_id, s.emoji, s.tags, load, s) for s in stickers)
    return await _import_items(
        session,
        store,
        items,
        len(stickers),
        validate_pack_name(name),
        title,
        source,
        platform,
        progress,
        captions,
        commit_every,
        budget,
    )


async def _import_items(
    session: AsyncSession,
    store: MediaStore,
    items: Iterable[
        tuple[str, str, str | None, str | None, tuple[str, ...], Callable[[Any], Awaitable[Any]], Any]
    ],
    total: int,
    pack_name: str,
    title: str | None,
    source: str | None,
    platform: str,
    progress: Callable[[int, int], None] | None,
    captions: Callable[[Any], Awaitable[str | None]] | None = None,
    commit_every: int = 0,
    budget: ImportBudget | None = None,
) -> tuple[Pack, ImportReport]:
    """Add the items not yet in the pack. With ``commit_every`` (issue 8) new stickers are committed in batches
    of that size while a new pack stays ``importing`` (never served); a re-run after a crash finds them and
    resumes. The caller commits the rest, with the pack turned ``ready``. Without it, the caller's one
    transaction holds everything (on PackError nothing was added)."""
    report = ImportReport(pack_name)
    title = clean_label(title, 256)  # issue 8: text from a pack.json or a platform is untrusted
    pack = (
        await session.execute(select(Pack).where(Pack.platform == platform, Pack.name == pack_name))
    ).scalar_one_or_none()
    existing: dict[str, Sticker] = {}
    report.served_before = pack is not None and pack.status == "ready"
    if pack is not None:
        for s in (await session.execute(select(Sticker).where(Sticker.pack_id == pack.id))).scalars():
            existing[s.platform_sticker_id] = s

    pending: list[Sticker] = []
    seen: set[str] = set()

    async def save_batch(last: bool = False) -> None:
        """Commit what is decoded so far (issue 8): a killed import keeps it, and a re-run resumes there."""
        nonlocal pack
        if not pending:
            return
        if pack is None:  # a new pack: created with its first good sticker, served only once complete
            pack = Pack(
                platform=platform, name=pack_name, title=title or pack_name, source=source, status="importing"
            )
            session.add(pack)
            await session.flush()
        for s in pending:
            s.pack_id = pack.id
            session.add(s)
        report.added += len(pending)
        pending.clear()
        await session.flush()
        if commit_every and not last:
            await session.commit()

    for i, (raw_label, raw_id, raw_file_id, raw_emoji, raw_tags, load, item) in enumerate(items):
        if progress:
            progress(i, total)
        label = printable(raw_label, MAX_LABEL_CHARS)  # issue 14: a name like "\x1b[2J.png" drives terminals
        sticker_id = clean_label(raw_id, 128)
        if sticker_id is None:
            report.skipped.append((label, "the sticker has no usable id"))
            continue
        file_id = clean_label(raw_file_id, 256)
        em = clean_label(raw_emoji, 64)
        tags = [t for t in (clean_label(x, 64) for x in raw_tags) if t][:32]
        if sticker_id in seen:
            report.skipped.append((label, f"duplicate sticker id {sticker_id!r}"))
            continue
        seen.add(sticker_id)
        if sticker_id in existing:
            report.unchanged += 1
            old = existing[sticker_id]
            if file_id and old.platform_file_id != file_id:  # Telegram file_ids change: keep the newest
                old.platform_file_id = file_id
            continue
        spent = budget.spent() if budget is not None else None
        if spent is not None:
            report.skipped.append((label, spent))
            continue
        try:
            decoded = await load(item)
        except MediaError as exc:
            report.skipped.append((label, printable(str(exc), 500)))
            continue
        except (OSError, TimeoutError) as exc:  # a failed download is one skipped sticker, not a failed pack
            report.skipped.append((label, printable(f"could not be fetched: {exc}", 500)))
            continue
        sha = store.put(to_png_bytes(decoded.image))  # atomic (temp file + rename): never half a picture
        caption = await captions(decoded.image) if captions is not None else None
        pending.append(
            Sticker(
                platform_sticker_id=sticker_id,
                platform_file_id=file_id,
                emoji=em,
                tags=list(tags),
                caption=caption,
                media_sha256=sha,
                kind=decoded.kind,
                source_format=decoded.source_format,
                width=decoded.width,
                height=decoded.height,
                position=i,
            )
        )
        if commit_every and len(pending) >= commit_every:
            await save_batch()
    if progress:
        progress(total, total)
    if not pending and not report.added and not existing:
        reasons = "; ".join(f"{f}: {r}" for f, r in report.skipped[:5]) or "no image files found"
        raise PackError(f"Nothing to import into {pack_name}: {reasons}")
    await save_batch(last=True)  # the caller commits it together with the status
    assert pack is not None
    pack.status = "ready"
    await session.flush()
    return pack, report
