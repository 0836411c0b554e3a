"""Packs of a Discord server: its own stickers, uploaded images or zips, shared library packs.

Pack names are global in the library, so a server's packs carry its id: ``discord-<guild id>`` holds the
server's own stickers, ``g<guild id>-<name>`` an upload called ``name``. Members only ever see and type the
short names (``server``, ``name``); :func:`server_packs` and :func:`resolve` translate.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import re
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import discord
import emoji as emoji_pkg

from bot.discord import _texts as texts
from bot.discord._errors import Refusal
from bot.discord._refs import PLATFORM, guild_chat, user_ref
from engine.library import (
    IMAGE_SUFFIXES,
    ImportReport,
    NothingToImport,
    PlatformSticker,
    emoji_from_filename,
    slugify_pack_name,
    validate_pack_name,
)
from engine.service import StickerService
from engine.settings import Settings

SERVER_PACK = "server"  # what members call the pack of the server's own stickers
MAX_UPLOAD_FILES = 3  # attachment options of /addpack; more images go in a zip
MAX_ZIP_BYTES = 25 * 1024 * 1024  # Discord's own upload limit for a bot
MAX_PACK_NAME = 64  # engine.library.PACK_NAME_RE
UPLOAD_SUFFIXES = frozenset(IMAGE_SUFFIXES - {".npy"})
_UNSAFE_FILENAME = re.compile(r"[^\w.-]+")
GENERIC_FILE_NAMES = frozenset({"image", "unknown", "sticker", "file", "download"})


@dataclass(frozen=True)
class PackRow:
    display: str  # what members see and type
    internal: str  # the library's name
    title: str | None
    stickers: int


@dataclass
class ImportOutcome:
    display: str
    report: ImportReport
    lottie: frozenset[str] = frozenset()  # names of the Lottie stickers among the server's stickers

    @property
    def lottie_skipped(self) -> bool:
        return any(label in self.lottie for label, _ in self.report.skipped)

    @property
    def lottie_imported(self) -> bool:
        return len(self.lottie) > sum(1 for label, _ in self.report.skipped if label in self.lottie)


# ---------------------------------------------------------------------------------------------- names
def server_pack_name(guild_id: int) -> str:
    return f"discord-{guild_id}"


def upload_prefix(guild_id: int) -> str:
    return f"g{guild_id}-"


def upload_pack_name(guild_id: int, display: str) -> str:
    prefix = upload_prefix(guild_id)
    slug = slugify_pack_name(display)[: MAX_PACK_NAME - len(prefix)].strip("-_")
    if not slug:
        raise Refusal(texts.BAD_PACK_NAME.format(name=texts.md(display)))
    return validate_pack_name(prefix + slug)


def display_name(guild_id: int, internal: str) -> str:
    if internal == server_pack_name(guild_id):
        return SERVER_PACK
    prefix = upload_prefix(guild_id)
    return internal[len(prefix) :] if internal.startswith(prefix) else internal


async def server_packs(service: StickerService, guild: discord.Guild) -> list[PackRow]:
    """The packs enabled in this server, by the names members use."""
    rows = []
    for p in await service.list_packs(guild_chat(guild)):
        display = display_name(guild.id, p.name)
        title = p.title if p.title and p.title not in (p.name, display) else None
        rows.append(PackRow(display, p.name, title, p.stickers))
    return rows


def resolve(rows: Sequence[PackRow], name: str) -> PackRow | None:
    """The pack a member means: by its name exactly, then ignoring case, then by its title."""
    wanted = name.strip()
    folded = wanted.casefold()
    for match in (
        lambda r: r.display == wanted,
        lambda r: r.display.casefold() == folded,
        lambda r: (r.title or "").casefold() == folded,
    ):
        for row in rows:
            if match(row):
                return row
    return None


# ---------------------------------------------------------------------------------------------- server stickers
def sticker_emoji(tag: str | None) -> str | None:
    """A guild sticker's "related emoji" (Discord's ``tags``): a unicode emoji or its name."""
    tag = (tag or "").strip()
    if not tag:
        return None
    if emoji_pkg.is_emoji(tag):
        return tag
    named = emoji_pkg.emojize(f":{tag.strip(':')}:", language="alias")
    if emoji_pkg.is_emoji(named):
        return named
    found = emoji_pkg.emoji_list(tag)
    return found[0]["emoji"] if found else None


def sticker_tags(sticker: discord.GuildSticker) -> tuple[str, ...]:
    """The words the ranker reads beside the picture: the sticker's name, description and a textual tag."""
    words = [sticker.name, sticker.description or ""]
    if sticker_emoji(sticker.emoji) is None:
        words.append(sticker.emoji or "")
    return tuple(w for w in (re.sub(r"[_\-]+", " ", w).strip() for w in words) if w)


def _sticker_fetcher(sticker: discord.GuildSticker, http: discord.http.HTTPClient):
    lottie = sticker.format is discord.StickerFormatType.lottie

    async def fetch() -> bytes:
        try:
            # Sticker.read() refuses Lottie stickers; their JSON is on the same CDN, so read the URL directly.
            data = await http.get_from_cdn(sticker.url)
        except (discord.HTTPException, aiohttp.ClientError) as exc:
            raise OSError(f"the download failed ({exc})") from None
        if lottie:
            # Discord serves plain Lottie JSON; the engine's decoder reads Lottie as Telegram's gzip'd .tgs.
            return await asyncio.to_thread(gzip.compress, data, 6, mtime=0)
        return data

    return fetch


def platform_stickers(
    stickers: Sequence[discord.GuildSticker], http: discord.http.HTTPClient
) -> list[PlatformSticker]:
    return [
        PlatformSticker(
            sticker_id=str(s.id),
            file_id=None,  # Discord sends a sticker by its id
            emoji=sticker_emoji(s.emoji),
            tags=sticker_tags(s),
            fetch=_sticker_fetcher(s, http),
            name=s.name,
        )
        for s in stickers
    ]


async def import_server_stickers(
    service: StickerService, guild: discord.Guild, by: discord.abc.User
) -> ImportOutcome:
    """Import (or refresh: only new stickers are downloaded) the server's own stickers and enable them."""
    stickers = [s for s in await guild.fetch_stickers() if s.available]
    if not stickers:
        raise Refusal(texts.NO_SERVER_STICKERS)
    name = server_pack_name(guild.id)
    try:
        report = await service.import_platform_pack(
            PLATFORM,
            name,
            platform_stickers(stickers, guild._state.http),
            title=texts.SERVER_PACK_TITLE.format(guild=guild.name),
            source=f"discord:guild:{guild.id}",
        )
    except NothingToImport as exc:  # worded with the name members use for the pack
        raise Refusal(texts.nothing_to_import(SERVER_PACK, exc.skipped)) from None
    await service.enable_pack(guild_chat(guild), name, by=user_ref(by))
    lottie = frozenset(s.name for s in stickers if s.format is discord.StickerFormatType.lottie)
    return ImportOutcome(SERVER_PACK, report, lottie)


# ---------------------------------------------------------------------------------------------- uploads
def _size_mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f}".rstrip("0").rstrip(".")


def check_uploads(files: Sequence[discord.Attachment], settings: Settings) -> bool:
    """Refuse what cannot be a pack before downloading anything. Returns whether the upload is one zip."""
    zips = [f for f in files if Path(f.filename).suffix.lower() == ".zip"]
    if zips and len(files) > 1:
        raise Refusal(texts.ONE_ZIP.format(n=MAX_UPLOAD_FILES))
    for f in files:
        suffix = Path(f.filename).suffix.lower()
        if suffix != ".zip" and suffix not in UPLOAD_SUFFIXES:
            raise Refusal(texts.BAD_UPLOAD_TYPE.format(file=texts.md(f.filename)))
        limit = MAX_ZIP_BYTES if suffix == ".zip" else settings.max_media_bytes
        if f.size > limit:
            raise Refusal(
                texts.UPLOAD_TOO_BIG.format(
                    file=texts.md(f.filename), size=_size_mb(f.size), limit=_size_mb(limit)
                )
            )
    return bool(zips)


async def _download(attachment: discord.Attachment) -> bytes:
    try:
        return await attachment.read()
    except (discord.HTTPException, aiohttp.ClientError):
        raise Refusal(texts.DOWNLOAD_FAILED.format(file=texts.md(attachment.filename))) from None


def file_name_words(stem: str) -> list[str]:
    """A picture's file name as a tag the ranker reads ("ramen_noodles" → "ramen noodles"), unless it is
    one of the names every pasted picture gets."""
    words = re.sub(r"[_\-.]+", " ", stem).strip()
    if not re.search(r"[^\W\d_]", words) or words.casefold() in GENERIC_FILE_NAMES:
        return []
    return [words]


def _safe_filename(name: str, fallback: str) -> str:
    path = Path(name)
    stem = _UNSAFE_FILENAME.sub("_", path.stem).strip("._")[:60] or fallback
    return stem + path.suffix.lower()


async def import_upload(
    service: StickerService,
    guild: discord.Guild,
    files: Sequence[discord.Attachment],
    name: str | None,
    by: discord.abc.User,
) -> ImportOutcome:
    """Import uploaded images (or one zip) as the server pack ``name`` (added to it if it exists) and enable it."""
    is_zip = check_uploads(files, service.settings)
    display = (name or Path(files[0].filename).stem).strip()
    internal = upload_pack_name(guild.id, display)
    with tempfile.TemporaryDirectory(prefix="stickerpick-discord-") as tmp:
        root = Path(tmp)
        if is_zip:
            source = root / "upload.zip"
            source.write_bytes(await _download(files[0]))
            if not zipfile.is_zipfile(source):
                raise Refusal(texts.NOT_A_ZIP.format(file=texts.md(files[0].filename)))
        else:
            source = root / "upload"
            source.mkdir()
            entries = []
            for i, attachment in enumerate(files):
                data = await _download(attachment)
                filename = f"{i}-{_safe_filename(attachment.filename, 'image')}"
                (source / filename).write_bytes(data)
                stem = Path(attachment.filename).stem.strip()[:60] or "image"
                # The sticker id carries the content's hash: Discord calls most pasted pictures "image.png",
                # and a new picture must not pass for one the pack already has.
                digest = hashlib.sha256(data).hexdigest()[:12]
                entries.append(
                    {
                        "file": filename,
                        "id": f"{stem}-{digest}",
                        "emoji": emoji_from_filename(stem),
                        "tags": file_name_words(stem),
                    }
                )
            (source / "pack.json").write_text(json.dumps({"name": internal, "stickers": entries}))
        try:
            label = files[0].filename if is_zip else display  # errors name the upload, not the temporary copy
            report = await service.import_pack(
                source, name=internal, title=display, platform=PLATFORM, label=label
            )
        except NothingToImport as exc:  # worded with the name members gave the pack
            raise Refusal(texts.nothing_to_import(display, exc.skipped)) from None
    await service.enable_pack(guild_chat(guild), internal, by=user_ref(by))
    return ImportOutcome(display_name(guild.id, internal), report)


async def enable_existing_pack(
    service: StickerService, guild: discord.Guild, name: str, by: discord.abc.User
) -> str:
    """Enable a pack by name without importing anything: one this server uploaded before (and removed), or
    a shared pack of the library (one the operator imported, like ``noto-emoji``). Returns its name."""
    name = name.strip()
    candidates = [(name, "local")]
    if slugify_pack_name(name):
        candidates.insert(0, (upload_pack_name(guild.id, name), PLATFORM))
    for internal, platform in candidates:
        if await service.has_pack(internal, platform=platform):
            await service.enable_pack(guild_chat(guild), internal, by=user_ref(by))
            return display_name(guild.id, internal)
    raise Refusal(texts.NO_SUCH_LIBRARY_PACK.format(name=texts.md(name)))
