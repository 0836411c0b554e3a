from __future__ import annotations

from PIL import Image

from bot.console import DEMO_SCRIPT, ConsoleChat, run_demo
from tests.engine.test_service import make_pack


async def test_console_chat_round_trip(service, tmp_path):
    chat = ConsoleChat(service, chat_name="t", out_dir=tmp_path / "out")
    assert await chat.handle("/sticker") == [
        "This chat has no sticker packs yet. An admin can add one with /addpack "
        "(console: `stickerpick packs add PATH --chat ...`)."
    ]
    out = await chat.handle(f"/addpack {make_pack(tmp_path / 'food')}")
    assert out[0].startswith("Added pack food: 5 new")
    assert await chat.handle("alice: who wants sushi with rice") == []
    assert await chat.handle("fish is my favourite") == []  # still alice
    out = await chat.handle("/sticker 2")
    assert "sushi" in out[1] and len([line for line in out if line.startswith("  ") and ". " in line]) == 2
    sheet = chat.sheets_written[-1]
    with Image.open(sheet) as im:
        assert im.width > 0 and im.height > 0
    history = await chat.handle("/history")
    assert history == ["  alice: who wants sushi with rice", "  alice: fish is my favourite"]
    assert (await chat.handle("/forget alice")) == ["Forgot alice: 2 messages deleted."]
    assert await chat.handle("/history") == ["(no conversation yet)"]
    assert (await chat.handle("/removepack nope"))[0].startswith("There is no pack called 'nope'")
    assert (await chat.handle("/bogus"))[0].startswith("Unknown command")
    assert (await chat.handle("/packs"))[0].strip().startswith("food")


async def test_demo_prints_suggestions_and_writes_pngs(service, tmp_path):
    service.settings.sticker_cooldown_s = 60  # the demo is not slowed down by the group-chat cooldown
    chat = ConsoleChat(service, chat_name="demo", out_dir=tmp_path / "out")
    await service.add_pack(chat.chat, make_pack(tmp_path / "food"))
    printed = await run_demo(chat)
    requests = sum(1 for s in DEMO_SCRIPT if isinstance(s, tuple))
    assert sum(1 for line in printed if line.startswith("Stickers for:")) == requests
    assert len(chat.sheets_written) == requests and all(p.is_file() for p in chat.sheets_written)
    again = await run_demo(chat)  # the demo starts from a clean history each run
    assert [line for line in again if "Stickers for" in line] == [
        line for line in printed if "Stickers for" in line
    ]


async def test_speakers_are_named_in_any_script(service, tmp_path):
    chat = ConsoleChat(service, chat_name="intl", out_dir=tmp_path / "out")
    for line in ("юля: привет", "José María: ¿qué tal?", "मीरा: नमस्ते", "12: not a name"):
        assert await chat.handle(line) == []
    assert await chat.handle("/history") == [
        "  юля: привет",
        "  José María: ¿qué tal?",
        "  मीरा: नमस्ते",
        "  मीरा: 12: not a name",  # a line that starts with digits is the last speaker's text
    ]


def _every_pack_error() -> list:
    from engine import errors as e

    skipped = [e.Skipped("a.png", e.SkipReason(e.SkipKind.DAMAGED, "truncated"))]
    return [
        e.UnknownPack("cats"),
        e.PackNotEnabled("cats"),
        e.PackBusy("cats"),
        e.EmbeddingFailed("v1", "RuntimeError"),
        e.BadPackName("no way"),
        e.PackSourceMissing("cats.zip"),
        e.NotAPackSource("cats.txt"),
        e.TooManyStickers(300, 200),
        e.TooManyImages("cats.zip", 300, 200),
        e.UnreadableMetadata("pack.json", e.MetadataProblem.TOO_LARGE, limit=1000),
        e.InvalidPackJson(e.PackJsonProblem.SCHEMA, "stickers.0.file", "is required", more=2),
        e.NothingToImport("cats", skipped),
    ]


def test_the_console_words_every_refusal_and_skip_reason_itself():
    from bot import console
    from engine import errors as e

    samples = _every_pack_error()
    defined = {
        c
        for c in vars(e).values()
        if isinstance(c, type) and issubclass(c, e.PackError) and c is not e.PackError
    }
    assert defined == {type(x) for x in samples}  # a new refusal gets its sample here and its words there
    fallback = console.import_refusal(e.PackError("x"))
    lines = {type(x).__name__: console.pack_refusal(x) for x in samples}
    assert fallback not in lines.values() and len(set(lines.values())) == len(samples)
    assert lines["TooManyImages"] == "cats.zip holds 300 images; a pack may have at most 200."
    assert lines["InvalidPackJson"] == "pack.json: stickers.0.file: is required (and 2 more)"
    assert lines["NothingToImport"] == "Nothing to import into cats: a.png: damaged (truncated)."
    assert "/addpack" in lines["PackBusy"]  # the console's own command, not the engine's words
    assert set(console.SKIP_REASONS) == set(e.SkipKind)
    assert set(console.METADATA_PROBLEMS) == set(e.MetadataProblem)
    assert set(console.PACK_JSON_PROBLEMS) == set(e.PackJsonProblem)
    budget = e.SkipReason(e.SkipKind.BYTE_BUDGET, limit=5e6)
    assert (
        console.skip_reason(budget)
        == "the import read its limit of 5000000 bytes; /addpack it again to continue"
    )


async def test_addpack_answers_in_the_consoles_words(service, tmp_path):
    chat = ConsoleChat(service, chat_name="words", out_dir=tmp_path / "out")
    assert await chat.handle(f"/addpack {tmp_path / 'missing'} cats") == [
        f"{tmp_path / 'missing'} does not exist."
    ]
    folder = make_pack(tmp_path / "food")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    out = await chat.handle(f"/addpack {folder}")
    assert out[0].startswith("Added pack food: 5 new")
    assert out[1:] == ["  skipped broken.png: damaged (the PNG header is truncated or malformed)"]
