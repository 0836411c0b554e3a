"""The readers of a pack's files: a folder or a zip archive → its ``pack.json`` metadata and one
:class:`PackEntry` per image, each read at most once and within a byte limit.

Links are never followed (a link may point out of the pack: /etc/passwd, another user's pictures): every file of
a folder is opened with O_NOFOLLOW and must be a regular file. A metadata file that cannot be read refuses the
pack (:class:`~engine.errors.UnreadableMetadata`, :class:`~engine.errors.InvalidPackJson`); an image that cannot
be read is one skipped sticker (a :class:`~engine.media.MediaError` from its ``read``).
"""

from __future__ import annotations

import json
import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import emoji as emoji_pkg
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import (
    InvalidPackJson,
    MetadataProblem,
    NotAPackSource,
    PackJsonProblem,
    PackSourceMissing,
    TooManyImages,
    UnreadableMetadata,
)
from engine.media import CorruptMedia, MediaError, MediaTooLarge, UnsupportedMedia
from engine.preprocess import printable

IMAGE_SUFFIXES = {".png", ".webp", ".jpg", ".jpeg", ".gif", ".apng", ".tgs", ".webm", ".npy"}
METADATA_FILES = ("pack.json", "emoji_mapping.txt")
MAX_METADATA_BYTES = 1_000_000  # pack.json / emoji_mapping.txt, in a folder as in a zip

Reader = Callable[[int], bytes]  # read(max_bytes) -> bytes (raises MediaError past the limit)


class LinkRefused(MediaError):
    """An image of a folder is a symbolic link: links are never followed out of a pack."""


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
    """``pack.json`` → {"name", "title", "stickers": [...]}, or one :class:`InvalidPackJson` saying what is
    wrong."""
    try:
        raw = json.loads(text)
    except RecursionError:
        raise InvalidPackJson(PackJsonProblem.TOO_DEEP) from None
    except json.JSONDecodeError as exc:
        raise InvalidPackJson(PackJsonProblem.NOT_JSON, message=printable(str(exc), 200)) from None
    if not isinstance(raw, dict):
        raise InvalidPackJson(PackJsonProblem.NOT_AN_OBJECT)
    try:
        meta = _PackMeta.model_validate(raw)
    except RecursionError:
        raise InvalidPackJson(PackJsonProblem.TOO_DEEP) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidPackJson(
            PackJsonProblem.SCHEMA,
            location=printable(where, 200) if where else None,
            message=printable(first["msg"], 200),
            more=exc.error_count() - 1,
        ) from None
    return meta.model_dump()


@dataclass(frozen=True)
class PackEntry:
    file: str
    sticker_id: str
    emoji: str | None
    tags: tuple[str, ...]
    read: Reader


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


def _read_regular(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of a regular file, never through a symbolic link (O_NOFOLLOW), never a
    device, FIFO or /proc file. :class:`MediaTooLarge` past the limit, :class:`MediaError` otherwise."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise MediaError(f"{path.name} cannot be opened ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise MediaError(f"{path.name} is not a regular file")
        if st.st_size > limit:
            raise MediaTooLarge(f"{path.name} is {st.st_size} bytes; the limit is {limit}")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise MediaTooLarge(f"{path.name} is larger than the {limit}-byte limit")
    return data


def _utf8(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableMetadata(name, MetadataProblem.NOT_UTF8, detail=exc.reason) from None


@dataclass
class _Files:
    """What a folder or zip holds: the file names (for its metadata), a reader of a metadata file by name,
    and its images as (name, reader), in order."""

    names: list[str]
    read_text: Callable[[str], str]
    members: list[tuple[str, Reader]]


def _folder_files(source: Path) -> _Files:
    children = sorted(source.iterdir())
    links = [p for p in children if p.is_symlink()]
    files = [p for p in children if not p.is_symlink() and p.is_file()]
    for p in links:
        if p.name in METADATA_FILES:
            raise UnreadableMetadata(p.name, MetadataProblem.LINK)

    def read_text(name: str) -> str:
        try:
            data = _read_regular(source / name, MAX_METADATA_BYTES)
        except MediaTooLarge:
            raise UnreadableMetadata(name, MetadataProblem.TOO_LARGE, limit=MAX_METADATA_BYTES) from None
        except MediaError as exc:
            raise UnreadableMetadata(name, MetadataProblem.NOT_A_FILE, detail=str(exc)) from None
        return _utf8(name, data)

    def opener_for(p: Path) -> Reader:
        return lambda limit: _read_regular(p, limit)

    def refuse_link(limit: int) -> bytes:
        raise LinkRefused("a symbolic link: links are never followed out of a pack")

    members = [(p.name, opener_for(p)) for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    members += [(p.name, refuse_link) for p in links if p.suffix.lower() in IMAGE_SUFFIXES]
    return _Files([p.name for p in files], read_text, members)


def _zip_member_reader(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Reader:
    def read(limit: int) -> bytes:
        if info.file_size > limit:
            raise MediaTooLarge(f"file is {info.file_size} bytes; the limit is {limit}")
        try:
            with zf.open(info) as f:
                data = f.read(limit + 1)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:  # also covers CRC errors
            raise CorruptMedia(f"damaged zip member: {exc}") from exc
        except RuntimeError as exc:  # encrypted ("password required"): never asked for, never guessed
            raise UnsupportedMedia(f"an encrypted zip member ({exc})") from None
        except NotImplementedError as exc:  # a compression method zipfile lacks (e.g. 93: zstd)
            raise UnsupportedMedia(f"an unsupported zip compression ({exc})") from None
        if len(data) > limit:  # the header understated the size
            raise MediaTooLarge(f"file is larger than the {limit}-byte limit")
        return data

    return read


def _zip_files(source: Path) -> _Files:
    zf = zipfile.ZipFile(source)
    infos = [i for i in zf.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    by_name = {PurePosixPath(i.filename).name: i for i in infos}

    def read_text(name: str) -> str:
        reader = _zip_member_reader(zf, by_name[name])
        try:
            data = reader(MAX_METADATA_BYTES)
        except MediaTooLarge:
            raise UnreadableMetadata(name, MetadataProblem.TOO_LARGE, limit=MAX_METADATA_BYTES) from None
        except MediaError as exc:
            raise UnreadableMetadata(name, MetadataProblem.DAMAGED, detail=str(exc)) from None
        return _utf8(name, data)

    members = [
        (PurePosixPath(i.filename).name, _zip_member_reader(zf, i))
        for i in sorted(infos, key=lambda i: i.filename)
        if PurePosixPath(i.filename).suffix.lower() in IMAGE_SUFFIXES
    ]
    return _Files([PurePosixPath(i.filename).name for i in infos], read_text, members)


def _load_metadata(files: _Files) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, str]]:
    """(pack.json's metadata, its sticker entries by file name, emoji_mapping.txt's id → emoji)."""
    meta: dict[str, Any] = {}
    by_file: dict[str, dict[str, Any]] = {}
    mapping: dict[str, str] = {}
    if "pack.json" in files.names:
        meta = parse_pack_json(files.read_text("pack.json"))
        for s in meta["stickers"]:
            by_file[s["file"]] = s
    if "emoji_mapping.txt" in files.names:
        for line in files.read_text("emoji_mapping.txt").splitlines():
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2 and parts[0].strip():
                mapping[parts[0].strip()] = parts[1].strip()
    return meta, by_file, mapping


def _entry(name: str, read: Reader, info: dict[str, Any], mapping: dict[str, str]) -> PackEntry:
    stem = PurePosixPath(name).stem
    sticker_id = str(info.get("id") or stem)
    em = info.get("emoji") or mapping.get(sticker_id) or mapping.get(stem) or emoji_from_filename(stem)
    tags = tuple(str(t) for t in (info.get("tags") or []))
    if not tags:  # an upload's file name is often all the text it has: "happy_cat.png"
        words = words_from_filename(stem)
        tags = (words,) if words else ()
    return PackEntry(name, sticker_id, em, tags, read)


def iter_pack_source(
    source: Path, max_files: int, max_bytes: int, label: str | None = None
) -> tuple[dict[str, Any], Iterator[PackEntry], int]:
    """(pack.json metadata, entries, number of entries) for a folder or a zip archive. ``label``: how the
    errors name the source (default: the path as given)."""
    source = Path(source)
    label = str(source) if label is None else label
    if source.is_dir():
        files = _folder_files(source)
    elif source.is_file() and zipfile.is_zipfile(source):
        files = _zip_files(source)
    elif source.exists():
        raise NotAPackSource(label)
    else:
        raise PackSourceMissing(label)
    meta, by_file, mapping = _load_metadata(files)
    if len(files.members) > max_files:
        raise TooManyImages(label, len(files.members), max_files)
    entries = (_entry(name, read, by_file.get(name, {}), mapping) for name, read in files.members)
    return meta, entries, len(files.members)
