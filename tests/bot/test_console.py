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
