"""Pack import: every format through the one decoder; bad input is refused clearly and changes nothing."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from engine import library
from engine.db import Pack, Sticker, StickerEmbedding
from engine.library import (
    BadPackName,
    EmbeddingFailed,
    NotAPackSource,
    NothingToImport,
    PackSourceMissing,
    PlatformSticker,
    SkipKind,
    SkipReason,
    TooManyImages,
    UnknownPack,
    emoji_from_filename,
    words_from_filename,
)
from engine.service import ChatRef
from engine.store import MediaStore
from tests.auxil import media

CHAT = ChatRef("test", "c")

GOOD = {
    "1f602.png": media.png_bytes(),
    "1f60d.webp": media.webp_bytes(),
    "anim-😭.webp": media.webp_bytes(animated=True),
    "1f525.jpg": media.jpeg_bytes(),
    "1f389.gif": media.gif_bytes(),
    "1f44d.apng": media.apng_bytes(),
    "1f631.tgs": media.tgs_bytes(w=128, h=128, frames=10),
    "1f923.webm": media.webm_bytes(),
}


async def _counts(service) -> tuple[int, int, int]:
    async with service.sessions() as session:
        packs = (await session.execute(select(func.count()).select_from(Pack))).scalar_one()
        stickers = (await session.execute(select(func.count()).select_from(Sticker))).scalar_one()
        embs = (await session.execute(select(func.count()).select_from(StickerEmbedding))).scalar_one()
    return packs, stickers, embs


def _folder(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


@pytest.mark.parametrize("as_zip", [False, True])
async def test_every_format_imports(service, tmp_path, as_zip):
    folder = _folder(tmp_path / "mixed", GOOD)
    source: Path = folder
    if as_zip:
        source = tmp_path / "mixed.zip"
        with zipfile.ZipFile(source, "w") as zf:
            for name, data in GOOD.items():
                zf.writestr(f"mixed/{name}", data)
    report = await service.add_pack(CHAT, source, name="mixed")
    assert (report.added, report.skipped) == (len(GOOD), [])
    async with service.sessions() as session:
        rows = {s.platform_sticker_id: s for s in (await session.execute(select(Sticker))).scalars()}
    assert rows["1f631"].kind == "animated" and rows["1f631"].source_format == "tgs"
    assert rows["1f923"].kind == "video" and rows["1f923"].source_format == "webm"
    assert rows["1f44d"].source_format == "apng" and rows["anim-😭"].kind == "animated"
    assert rows["1f602"].emoji == "😂" and rows["anim-😭"].emoji == "😭" and rows["1f525"].emoji == "🔥"
    assert all(service.store.has(s.media_sha256) for s in rows.values())
    assert await _counts(service) == (1, len(GOOD), len(GOOD))  # embedded once, at import


async def test_reimport_adds_only_new_stickers(service, tmp_path):
    folder = _folder(tmp_path / "p", {"1f602.png": media.png_bytes()})
    await service.import_pack(folder, name="p")
    (folder / "1f622.png").write_bytes(media.png_bytes(color=(0, 0, 255, 255)))
    report = await service.import_pack(folder, name="p")
    assert (report.added, report.unchanged) == (1, 1)


async def test_bad_files_are_skipped_with_reasons_and_good_ones_kept(service, tmp_path):
    folder = _folder(
        tmp_path / "half",
        {
            "good.png": media.png_bytes(),
            "empty.png": b"",
            "cut.png": media.truncated_png(),
            "x.png": b"hello",
        },
    )
    report = await service.import_pack(folder, name="half")
    assert report.added == 1
    reasons = dict(report.skipped)
    assert set(reasons) == {"empty.png", "cut.png", "x.png"}
    assert all(isinstance(r, SkipReason) and r.detail and str(r) for r in reasons.values())
    assert reasons["cut.png"].kind is SkipKind.DAMAGED
    assert {reasons["empty.png"].kind, reasons["x.png"].kind} <= {SkipKind.UNSUPPORTED, SkipKind.DAMAGED}


@pytest.mark.parametrize(
    "name,data,words",
    [
        ("zero.png", b"", "empty"),
        ("truncated.png", media.truncated_png(), ""),
        ("huge.png", media.huge_png_header(20000, 20000), "20000"),
        ("text.png", media.not_an_image(), ""),
        ("bomb.tgs", media.gzip_bomb_tgs(), ""),
    ],
)
async def test_rejected_inputs_give_a_clear_error_and_change_nothing(service, tmp_path, name, data, words):
    await service.import_pack(_folder(tmp_path / "ok", {"1f602.png": media.png_bytes()}), name="ok")
    before = await _counts(service)
    files_before = sorted(p.name for p in service.store.root.rglob("*.png"))
    with pytest.raises(NothingToImport) as info:
        await service.import_pack(_folder(tmp_path / "bad", {name: data}), name="bad")
    assert info.value.pack_name == "bad"
    [(label, reason)] = info.value.skipped
    assert label == name and words.lower() in reason.detail.lower()
    message = str(info.value)  # the operator's sentence
    assert message.startswith("Nothing to import into bad:") and name in message
    assert await _counts(service) == before
    assert sorted(p.name for p in service.store.root.rglob("*.png")) == files_before


async def test_unknown_pack_and_bad_sources(service, tmp_path):
    with pytest.raises(UnknownPack, match="no pack called 'nope'") as unknown:
        await service.enable_pack(CHAT, "nope")
    assert unknown.value.name == "nope"
    with pytest.raises(PackSourceMissing, match="does not exist") as missing:
        await service.import_pack(tmp_path / "missing")
    assert missing.value.source == str(tmp_path / "missing")  # the path as the caller gave it
    (tmp_path / "file.txt").write_text("hi")
    with pytest.raises(NotAPackSource, match="neither a folder nor a zip") as not_source:
        await service.import_pack(tmp_path / "file.txt")
    assert not_source.value.source == str(tmp_path / "file.txt")
    with pytest.raises(BadPackName, match="Pack names use") as bad_name:
        await service.import_pack(
            _folder(tmp_path / "x", {"a.png": media.png_bytes()}), name="x'; DROP TABLE packs;--"
        )
    assert bad_name.value.name == "x'; DROP TABLE packs;--"
    assert await _counts(service) == (0, 0, 0)


async def test_pack_json_and_emoji_mapping_give_metadata(service, tmp_path):
    folder = _folder(
        tmp_path / "meta", {"a.png": media.png_bytes(), "b.png": media.png_bytes(color=(0, 9, 0, 255))}
    )
    (folder / "pack.json").write_text(
        json.dumps(
            {
                "name": "meta",
                "title": "Meta",
                "stickers": [{"file": "a.png", "id": "A", "emoji": "🔥", "tags": ["hot"]}],
            }
        )
    )
    (folder / "emoji_mapping.txt").write_text("b\t😢\n")
    await service.import_pack(folder)
    async with service.sessions() as session:
        rows = {s.platform_sticker_id: s for s in (await session.execute(select(Sticker))).scalars()}
        pack = (await session.execute(select(Pack))).scalar_one()
    assert pack.name == "meta" and pack.title == "Meta"
    assert (rows["A"].emoji, rows["A"].tags) == ("🔥", ["hot"])
    assert rows["b"].emoji == "😢"


async def test_a_pack_over_the_size_limit_is_refused(service, tmp_path):
    service.settings.max_pack_stickers = 2
    folder = _folder(tmp_path / "big", {f"{i}.png": media.png_bytes() for i in range(3)})
    with pytest.raises(TooManyImages, match="at most 2") as info:
        await service.import_pack(folder)
    assert (info.value.count, info.value.limit, info.value.source) == (3, 2, str(folder))


def test_refusals_name_the_source_by_the_label_the_caller_gives(tmp_path):
    """A caller importing from a temporary path passes what the user called the upload: the error carries
    that, never the path."""
    with pytest.raises(PackSourceMissing) as missing:
        library.iter_pack_source(tmp_path / "tmp123" / "upload.zip", 10, 10, label="cats.zip")
    assert missing.value.source == "cats.zip" and str(tmp_path) not in str(missing.value)
    folder = _folder(tmp_path / "tmp456", {f"{i}.png": media.png_bytes() for i in range(3)})
    with pytest.raises(TooManyImages) as many:
        library.iter_pack_source(folder, 2, 10, label="cats.zip")
    assert (many.value.source, many.value.count, many.value.limit) == ("cats.zip", 3, 2)
    assert str(tmp_path) not in str(many.value)


async def test_the_service_forwards_the_callers_label_for_the_source(service, tmp_path):
    with pytest.raises(PackSourceMissing) as missing:
        await service.import_pack(tmp_path / "tmp789" / "upload.zip", label="cats.zip")
    assert missing.value.source == "cats.zip"
    with pytest.raises(PackSourceMissing) as missing:
        await service.add_pack(ChatRef("console", "label"), tmp_path / "tmp789", label="my pack")
    assert missing.value.source == "my pack"


def test_emoji_from_filename():
    assert emoji_from_filename("1f602") == "😂"
    assert emoji_from_filename("2764-fe0f") == "❤️"
    assert emoji_from_filename("party 🎉 time") == "🎉"
    assert emoji_from_filename("plain") is None
    assert emoji_from_filename("deadbeef") is None


async def test_ocr_reads_a_caption_at_import_when_turned_on(service, tmp_path):
    from PIL import Image, ImageDraw, ImageFont

    from engine.preprocess import sticker_text

    pytest.importorskip("rapidocr_onnxruntime")
    im = Image.new("RGBA", (320, 160), (0, 0, 0, 0))
    ImageDraw.Draw(im).text((20, 50), "NO WAY", fill=(0, 0, 0, 255), font=ImageFont.load_default(size=48))
    folder = tmp_path / "captioned"
    folder.mkdir()
    im.save(folder / "1f62e.png")
    (folder / "1f602.png").write_bytes(media.png_bytes())  # no text on it
    service.settings.ocr_captions = True
    await service.import_pack(folder, name="captioned")
    async with service.sessions() as session:
        rows = {s.platform_sticker_id: s for s in (await session.execute(select(Sticker))).scalars()}
    assert rows["1f62e"].caption == "NO WAY"
    assert rows["1f602"].caption is None
    assert sticker_text(rows["1f62e"].emoji, rows["1f62e"].tags, rows["1f62e"].caption).endswith("NO WAY")


# ---------------------------------------------------------------- interrupted imports (in process; the
# SIGKILL versions are in test_faults.py)
_REAL_DECODE = library._decode_entry


class _Crash(Exception):
    """Stands for the process dying mid-import: the import stops there, without the caller's last commit."""


def _decode_then_crash(monkeypatch, n: int) -> list[str]:
    """Decode ``n`` files, then crash. Returns the files decoded (the work a resumed import must not redo)."""
    decoded: list[str] = []

    async def decode(entry, limits):
        if len(decoded) >= n:
            raise _Crash(entry.file)
        decoded.append(entry.file)
        return await _REAL_DECODE(entry, limits)

    monkeypatch.setattr(library, "_decode_entry", decode)
    return decoded


def _numbered(root: Path, n: int, start: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        colour = (i * 37 % 256, i * 91 % 256, 120, 255)
        (root / f"s{i:03d}-🙂.png").write_bytes(media.png_bytes(16 + i % 5, 16, colour))
    return root


async def test_an_interrupted_import_keeps_its_batches_unserved_and_resumes(service, tmp_path, monkeypatch):
    monkeypatch.setattr("engine.service._packs.IMPORT_BATCH", 4)
    folder = _numbered(tmp_path / "big", 11)
    _decode_then_crash(monkeypatch, 10)
    with pytest.raises(_Crash):
        await service.add_pack(CHAT, folder, name="big")
    [info] = await service.list_packs()
    assert (info.status, info.stickers) == ("importing", 8)  # two batches of 4 committed, the next 2 lost
    assert info.unfinished and (info.platform, info.source) == ("local", str(folder))  # what resumes it
    assert await _counts(service) == (1, 8, 0)
    await service.enable_pack(CHAT, "big")
    await service.record(CHAT, None, "smile")
    assert not (await service.suggest(CHAT, cooldown=False)).items  # an unfinished pack is never served

    decoded = _decode_then_crash(monkeypatch, 100)
    report = await service.add_pack(CHAT, folder, name="big")
    assert (report.added, report.unchanged, report.skipped) == (3, 8, [])
    assert decoded == ["s008-🙂.png", "s009-🙂.png", "s010-🙂.png"]  # only the rest is decoded again
    [info] = await service.list_packs()
    assert (info.status, info.stickers, info.unfinished) == ("ready", 11, False)
    assert await _counts(service) == (1, 11, 11)
    async with service.sessions() as session:
        positions = list(
            (await session.execute(select(Sticker.position).order_by(Sticker.position))).scalars()
        )
    assert positions == list(range(11))  # the pack's order survives the resume
    assert (await service.suggest(CHAT, cooldown=False)).items


async def test_an_import_that_fails_before_its_first_batch_leaves_no_pack(service, tmp_path, monkeypatch):
    monkeypatch.setattr("engine.service._packs.IMPORT_BATCH", 4)
    folder = _numbered(tmp_path / "p", 6)
    _decode_then_crash(monkeypatch, 3)
    with pytest.raises(_Crash):
        await service.import_pack(folder, name="p")
    assert await service.list_packs() == [] and await _counts(service) == (0, 0, 0)


async def test_an_interrupted_refresh_keeps_the_pack_served(service, tmp_path, monkeypatch):
    monkeypatch.setattr("engine.service._packs.IMPORT_BATCH", 2)
    folder = _numbered(tmp_path / "p", 3)
    await service.add_pack(CHAT, folder, name="p")
    _numbered(folder, 5, start=3)
    _decode_then_crash(monkeypatch, 3)
    with pytest.raises(_Crash):
        await service.import_pack(folder, name="p")
    [info] = await service.list_packs()
    assert (info.status, info.stickers) == ("ready", 5)  # the old stickers and one committed batch
    await service.record(CHAT, None, "smile")
    assert (await service.suggest(CHAT, cooldown=False)).items  # still served; new ones embedded on use
    decoded = _decode_then_crash(monkeypatch, 100)
    report = await service.import_pack(folder, name="p")
    assert (report.added, report.unchanged) == (3, 5) and len(decoded) == 3
    assert await _counts(service) == (1, 8, 8)


async def test_an_interrupted_platform_import_fetches_only_the_rest(service, monkeypatch):
    monkeypatch.setattr("engine.service._packs.IMPORT_BATCH", 3)
    fetched: list[int] = []
    crash_after = [7]

    def sticker(i: int) -> PlatformSticker:
        async def fetch() -> bytes:
            if len(fetched) >= crash_after[0]:
                raise _Crash(i)
            fetched.append(i)
            return media.png_bytes(16, 16, (i * 40 % 256, 10, 200, 255))

        return PlatformSticker(f"u{i}", f"file-{i}", "🍕", fetch=fetch)

    stickers = [sticker(i) for i in range(8)]
    with pytest.raises(_Crash):
        await service.import_platform_pack("telegram", "pizza", stickers, title="Pizza")
    [info] = await service.list_packs()
    assert (info.status, info.stickers, info.platform) == ("importing", 6, "telegram")
    assert info.unfinished
    fetched.clear()
    crash_after[0] = 100
    report = await service.import_platform_pack("telegram", "pizza", stickers, title="Pizza")
    assert (report.added, report.unchanged) == (2, 6) and fetched == [6, 7]  # nothing downloaded twice
    [info] = await service.list_packs()
    assert (info.status, info.stickers) == ("ready", 8)


async def test_a_failure_before_embedding_leaves_the_pack_unserved_until_imported_again(
    service, tmp_path, monkeypatch
):
    """A pack is ``ready`` only once its embeddings exist (a damaged image tower used to leave a
    pack ready without any); running the import again embeds it and serves it."""

    async def crash(pack_id, ranker):
        raise _Crash(pack_id)

    folder = _numbered(tmp_path / "p", 4)
    with monkeypatch.context() as m:
        m.setattr(service.embeddings, "embed_pack", crash)
        with pytest.raises(EmbeddingFailed, match="not served"):
            await service.import_pack(folder, name="p")
    assert await _counts(service) == (1, 4, 0)
    [info] = await service.list_packs()
    assert info.status == "importing" and info.unfinished
    report = await service.import_pack(folder, name="p")
    assert (report.added, report.unchanged) == (0, 4)
    [info] = await service.list_packs()
    assert info.status == "ready"
    assert await _counts(service) == (1, 4, 4)
    await service.enable_pack(CHAT, "p")
    await service.record(CHAT, None, "smile")
    assert (await service.suggest(CHAT, cooldown=False)).items
    # a refresh whose new stickers cannot be embedded: unserved too, rather than failing every /sticker
    _numbered(folder, 2, start=4)
    with monkeypatch.context() as m:
        m.setattr(service.embeddings, "embed_pack", crash)
        with pytest.raises(EmbeddingFailed):
            await service.import_pack(folder, name="p")
    [info] = await service.list_packs()
    assert info.status == "importing"
    assert not (await service.suggest(CHAT, cooldown=False)).items
    report = await service.import_pack(folder, name="p")
    assert (report.added, report.unchanged) == (0, 6)
    [info] = await service.list_packs()
    assert info.status == "ready"
    assert (await service.suggest(CHAT, cooldown=False)).items


def test_the_media_store_writes_whole_files_or_nothing(tmp_path, monkeypatch):
    store = MediaStore(tmp_path / "media")
    png = media.png_bytes()

    def full_disk(*_args):
        raise OSError("no space left on device")

    with monkeypatch.context() as m:
        m.setattr("engine.fsutil.os.replace", full_disk)
        with pytest.raises(OSError):
            store.put(png)
    assert [f for f in store.root.rglob("*") if f.is_file()] == []  # neither a picture nor its temp file
    sha = store.put(png)
    assert store.path(sha).read_bytes() == png and store.put(png) == sha
    stale = store.path(sha).parent / ".killed.tmp"  # what a SIGKILLed writer leaves
    stale.write_bytes(png[:10])
    os.utime(stale, (0, 0))
    live = store.path(sha).parent / ".writing.tmp"  # another process writing right now
    live.write_bytes(png[:10])
    assert store.sweep_temp() == 1
    assert not stale.exists() and live.exists() and store.has(sha)


@pytest.mark.parametrize(
    ("stem", "words"),
    [
        ("happy_cat-2", "happy cat"),
        ("thumbsUp", "thumbs up"),
        ("грустный_кот", "грустный кот"),
        ("face", "face"),
        ("1f602", None),
        ("1f469-200d-1f4bb", None),
        ("a3f9c2e1", None),
        ("IMG_0042", None),
        ("0042", None),
    ],
)
def test_words_from_filename(stem: str, words: str | None) -> None:
    assert words_from_filename(stem) == words


def test_an_uploads_file_name_is_its_text(tmp_path: Path) -> None:
    """A folder of pictures with no pack.json: each file name's words become the sticker's tags, so a model
    that reads sticker text has something to read."""
    from engine.library import iter_pack_source

    folder = tmp_path / "pack"
    folder.mkdir()
    for name in ("happy_cat.png", "1f602.png", "IMG_0042.png"):
        Image.new("RGBA", (8, 8), (200, 10, 10, 255)).save(folder / name)
    _, entries, n = iter_pack_source(folder, max_files=10, max_bytes=1 << 20)
    tags = {e.file: e.tags for e in entries}
    assert n == 3 and tags == {"happy_cat.png": ("happy cat",), "1f602.png": (), "IMG_0042.png": ()}
