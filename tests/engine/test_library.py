"""Pack import: every format through the one decoder; bad input is refused clearly and changes nothing."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.db import Pack, Sticker, StickerEmbedding
from engine.library import PackError, emoji_from_filename
from engine.service import ChatRef
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
    assert all(isinstance(r, str) and r for r in reasons.values())


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
    with pytest.raises(PackError) as info:
        await service.import_pack(_folder(tmp_path / "bad", {name: data}), name="bad")
    message = str(info.value)
    assert message.startswith("Nothing to import into bad:") and name in message
    assert words.lower() in message.lower()
    assert await _counts(service) == before
    assert sorted(p.name for p in service.store.root.rglob("*.png")) == files_before


async def test_unknown_pack_and_bad_sources(service, tmp_path):
    with pytest.raises(PackError, match="no pack called 'nope'"):
        await service.enable_pack(CHAT, "nope")
    with pytest.raises(PackError, match="does not exist"):
        await service.import_pack(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("hi")
    with pytest.raises(PackError, match="neither a folder nor a zip"):
        await service.import_pack(tmp_path / "file.txt")
    with pytest.raises(PackError, match="Pack names use"):
        await service.import_pack(
            _folder(tmp_path / "x", {"a.png": media.png_bytes()}), name="x'; DROP TABLE packs;--"
        )
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
    with pytest.raises(PackError, match="at most 2"):
        await service.import_pack(folder)


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
