"""Hostile packs: what a crafted folder or zip can still do once the decoder is bounded — abort an
import with one odd zip member, crash on a malformed pack.json, read files outside the pack through links,
take the main process's memory or time, drive the terminal with its names, or race another import."""

from __future__ import annotations

import asyncio
import io
import json
import os
import struct
import sys
import time
import zipfile

import pytest
from PIL import Image

from engine.library import (
    InvalidPackJson,
    MetadataProblem,
    PackBusy,
    SkipKind,
    UnreadableMetadata,
    parse_pack_json,
)
from engine.media import sniff_format
from engine.service import ChatRef, open_service
from tests.auxil import media

CHAT = ChatRef("test", "c")


def _patch_member(
    zip_bytes: bytes, name: str, *, method: int | None = None, flags: int | None = None
) -> bytes:
    """Rewrite a stored member's compression method or flag bits in both of its zip headers: what a zip made
    by another tool (zstd, method 93; a password) looks like to Python's zipfile."""
    data = bytearray(zip_bytes)
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        info = zf.getinfo(name)
    local = info.header_offset
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(name.encode())] != name.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    if method is not None:
        struct.pack_into("<H", data, local + 8, method)
        struct.pack_into("<H", data, central + 10, method)
    if flags is not None:
        struct.pack_into("<H", data, local + 6, flags)
        struct.pack_into("<H", data, central + 8, flags)
    return bytes(data)


async def test_an_encrypted_or_unsupported_zip_member_is_skipped_and_reported(service, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("good-1f600.png", media.png_bytes())
        zf.writestr("zstd-1f601.png", media.png_bytes(color=(0, 255, 0, 255)))
        zf.writestr("secret-1f602.png", media.png_bytes(color=(0, 0, 255, 255)))
    data = _patch_member(buf.getvalue(), "zstd-1f601.png", method=93)
    data = _patch_member(data, "secret-1f602.png", flags=0x1)
    source = tmp_path / "odd.zip"
    source.write_bytes(data)
    report = await service.add_pack(CHAT, source, name="odd")
    assert report.added == 1
    reasons = dict(report.skipped)
    assert reasons["zstd-1f601.png"].kind is reasons["secret-1f602.png"].kind is SkipKind.UNSUPPORTED
    assert (
        "compression" in reasons["zstd-1f601.png"].detail
        and "encrypted" in reasons["secret-1f602.png"].detail
    )
    [info] = await service.list_packs()
    assert info.status == "ready" and not info.unfinished


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ('{"stickers": 7}', "stickers"),
        ('{"stickers": [{"file": "a.png", "tags": 5}]}', "stickers.0.tags"),
        ('{"name": ["x"]}', "name"),
        ('{"stickers": [{"id": "a"}]}', "stickers.0.file"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"stickers": [' + '{"file": "a.png", "tags": [' * 5000 + "]}" * 5000 + "]}", "pack.json"),
        ('"just a string"', "JSON object"),
        ("{not json", "not valid JSON"),
    ],
)
async def test_a_malformed_pack_json_gives_one_clear_error(service, tmp_path, doc: str, expected: str):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "1f600.png").write_bytes(media.png_bytes())
    (folder / "pack.json").write_text(doc)
    with pytest.raises(InvalidPackJson) as exc:
        await service.add_pack(CHAT, folder, name="bad")
    message = str(exc.value)
    assert expected in message and "\n" not in message and len(message) < 300
    assert len(exc.value.message) <= 200 and len(exc.value.location or "") <= 200
    assert await service.list_packs() == []


def test_pack_json_schema_keeps_what_the_readme_documents():
    meta = parse_pack_json(
        json.dumps(
            {
                "name": "food",
                "title": "Food",
                "extra": {"ignored": True},
                "stickers": [{"file": "a.png", "id": 3, "emoji": "🍕", "tags": ["pizza", 1]}],
            }
        )
    )
    assert meta["name"] == "food" and meta["stickers"][0] == {
        "file": "a.png",
        "id": 3,
        "emoji": "🍕",
        "tags": ["pizza", 1],
    }


async def test_folder_imports_never_follow_links_out_of_the_pack(service, tmp_path):
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "holiday.png").write_bytes(media.png_bytes(color=(1, 2, 3, 255)))
    folder = tmp_path / "linky"
    folder.mkdir()
    (folder / "1f600.png").write_bytes(media.png_bytes())
    (folder / "1f601.png").symlink_to(outside / "holiday.png")
    (folder / "1f602.png").symlink_to("/etc/passwd")
    (folder / "1f603.png").symlink_to("/proc/self/environ")
    opened: list[str] = []
    watching = [True]

    def audit(event: str, args: tuple) -> None:  # every file this process opens, while the import runs
        if watching[0] and event == "open" and isinstance(args[0], str | bytes | os.PathLike):
            opened.append(os.fsdecode(args[0]))

    sys.addaudithook(audit)
    try:
        report = await service.add_pack(CHAT, folder, name="linky")
    finally:
        watching[0] = False
    assert report.added == 1
    assert {f for f, _ in report.skipped} == {"1f601.png", "1f602.png", "1f603.png"}
    assert all(why.kind is SkipKind.LINK and "link" in str(why) for _, why in report.skipped)
    assert not [p for p in opened if "passwd" in p or "environ" in p or "holiday" in p], opened
    (folder / "pack.json").symlink_to("/etc/passwd")
    with pytest.raises(UnreadableMetadata, match="symbolic link") as info:
        await service.add_pack(CHAT, folder, name="linky2")
    assert (info.value.file, info.value.problem) == ("pack.json", MetadataProblem.LINK)


async def test_metadata_files_in_folders_are_size_capped(service, tmp_path):
    folder = tmp_path / "big-meta"
    folder.mkdir()
    (folder / "1f600.png").write_bytes(media.png_bytes())
    (folder / "emoji_mapping.txt").write_bytes(b"1f600\t\xf0\x9f\x98\x80\n" * 200_000)  # 2.2 MB
    with pytest.raises(UnreadableMetadata, match=r"emoji_mapping\.txt is .*limit") as info:
        await service.add_pack(CHAT, folder, name="bigmeta")
    assert (info.value.file, info.value.problem) == ("emoji_mapping.txt", MetadataProblem.TOO_LARGE)
    assert info.value.limit == 1_000_000


async def test_the_main_process_gets_a_bounded_still_and_bounded_checks(service, tmp_path):
    tall = io.BytesIO()
    Image.new("L", (1, 16_000_000)).save(tall, "PNG")  # 31 KB, 16 M pixels (within the area limit)
    assert len(tall.getvalue()) < 64 * 1024
    folder = tmp_path / "tall"
    folder.mkdir()
    (folder / "1f600.png").write_bytes(tall.getvalue())
    report = await service.add_pack(CHAT, folder, name="tall")
    assert report.added == 1
    [sticker] = await _stickers(service)
    assert (sticker.width, sticker.height) == (1, 16_000_000)  # the source's size is recorded…
    still = service.store.open(sticker.media_sha256)
    assert max(still.size) <= 1024  # …but what reached this process (and the store) is bounded
    # an 8 MB "PNG" of empty chunks: the format check in this process looks at a few chunks, not 700,000
    padded = media.png_bytes()[:33] + b"\x00" * (8 * 1024 * 1024 - 34)
    started = time.perf_counter()
    assert sniff_format(padded) == "png"
    assert time.perf_counter() - started < 0.02


async def _stickers(service):
    from sqlalchemy import select

    from engine.db import Sticker

    async with service.sessions() as session:
        return list((await session.execute(select(Sticker).order_by(Sticker.id))).scalars())


async def test_an_import_has_a_byte_and_time_budget_and_resumes(service, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    one = media.png_bytes()
    for i in range(6):
        (folder / f"s{i}-😀.png").write_bytes(media.png_bytes(color=(i * 40, 0, 0, 255)))
    service.settings.max_pack_bytes = 3 * len(one)  # room for 3 files
    report = await service.add_pack(CHAT, folder, name="many")
    assert report.added == 3 and len(report.skipped) == 3
    assert all(why.kind is SkipKind.BYTE_BUDGET and why.kind.resumable for _, why in report.skipped)
    assert all(why.limit == 3 * len(one) and "run it again" in str(why) for _, why in report.skipped)
    service.settings.max_pack_bytes = 10**9
    service.settings.pack_import_budget_s = 1e-9  # spent before the first sticker
    report = await service.add_pack(CHAT, folder, name="many")
    assert report.added == 0 and len(report.skipped) == 3
    assert all(why.kind is SkipKind.TIME_BUDGET for _, why in report.skipped)
    service.settings.pack_import_budget_s = 600
    report = await service.add_pack(CHAT, folder, name="many")
    assert (report.added, report.unchanged, report.skipped) == (3, 3, [])


async def test_names_from_a_pack_are_shown_with_control_characters_escaped(service, tmp_path):
    from bot.console import ConsoleChat

    source = tmp_path / "ansi.zip"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("1f600.png", media.png_bytes())
        zf.writestr("\x1b[2J\x1b]0;pwned\x07\u202e.png", media.not_an_image())
    report = await service.add_pack(CHAT, source, name="ansi")
    [(name, _why)] = report.skipped
    assert "\x1b" not in name and "\x07" not in name and "\u202e" not in name and "\\x1b[2J" in name
    chat = ConsoleChat(service, "ansi", out_dir=tmp_path / "out")
    lines = await chat.handle(f"/addpack {source} ansi")
    assert any("\\x1b" in line for line in lines)
    assert not any(ch in line for line in lines for ch in "\x1b\x07\u202e")


async def test_two_imports_of_the_same_new_pack_at_once(migrated, tmp_path):
    folder = tmp_path / "race"
    folder.mkdir()
    for i in range(12):
        (folder / f"s{i}-😀.png").write_bytes(media.png_bytes(color=(i * 20, 0, 0, 255)))
    first, second = await open_service(migrated), await open_service(migrated)
    try:
        results = await asyncio.gather(
            first.import_pack(folder, name="race"),
            second.import_pack(folder, name="race"),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert all(isinstance(e, PackBusy) for e in errors), errors  # never an IntegrityError traceback
        assert len(errors) < 2
        assert errors == [] or "already being imported" in str(errors[0])
        report = await first.import_pack(folder, name="race")  # and running it again finishes it
        assert report.added + report.unchanged == 12
        [info] = await first.list_packs()
        assert (info.status, info.stickers) == ("ready", 12)
    finally:
        await first.close()
        await second.close()
