"""The console answers like the bots: states without arguments, usage lines, "no such sticker", plurals."""

from __future__ import annotations

from bot.console import ConsoleChat
from tests.engine.test_service import make_pack


async def test_console_answers_like_the_bots(service, tmp_path) -> None:
    chat = ConsoleChat(service, chat_name="t", out_dir=tmp_path / "out")
    await chat.handle(f"/addpack {make_pack(tmp_path / 'food')}")
    assert await chat.handle("/logging") == [
        "Logging for retraining is off in this chat. /logging on|off changes it."
    ]
    assert await chat.handle("/logging on") == ["Logging for retraining is on in this chat."]
    assert (await chat.handle("/logging"))[0].startswith("Logging for retraining is on")
    assert await chat.handle("/logging maybe") == [
        "Usage: /logging [on|off]     allow keeping this chat's messages for retraining (off by default); "
        "alone: the state"
    ]
    for bad in ("/sticker abc", "/sticker 0", "/sticker 2 3"):
        assert (await chat.handle(bad))[0].startswith("Usage: /sticker [k]"), bad
    assert [ln.split()[1] for ln in await chat.handle("/addpack")] == ["/addpack", "/addpack"]

    await chat.handle("alice: who wants sushi with rice")
    assert await chat.handle("/send nope") == [
        "No such sticker in this chat's packs: nope. /sticker shows some."
    ]
    assert await chat.handle("/send sushi") == ["alice sent sushi (logged for retraining)"]
    assert await chat.handle("/forget alice") == ["Forgot alice: 1 message deleted."]
    await chat.handle("bob: one")
    await chat.handle("bob: two")
    assert await chat.handle("/forget bob") == ["Forgot bob: 2 messages deleted."]


async def test_the_cooldown_can_be_turned_off_in_the_console(service, tmp_path) -> None:
    service.settings.sticker_cooldown_s = 60
    chat = ConsoleChat(service, chat_name="c", out_dir=tmp_path / "out")
    await chat.handle(f"/addpack {make_pack(tmp_path / 'food')}")
    await chat.handle("alice: pizza?")
    assert await chat.handle("/cooldown") == [
        "The /sticker cooldown is on here: one /sticker per 60 s, as in group chats."
    ]
    assert (await chat.handle("/sticker"))[0].startswith("Stickers for")
    assert not (await chat.handle("/sticker"))[0].startswith("Stickers for")  # cooling down
    assert await chat.handle("/cooldown off") == [
        "The /sticker cooldown is off here: ask as often as you like."
    ]
    assert (await chat.handle("/sticker"))[0].startswith("Stickers for")
    assert (await chat.handle("/sticker"))[0].startswith("Stickers for")


async def test_a_library_pack_by_name(service, tmp_path) -> None:
    await service.import_pack(make_pack(tmp_path / "food"), name="noto-emoji")
    chat = ConsoleChat(service, chat_name="lib", out_dir=tmp_path / "out")
    assert await chat.handle("/addpack noto-emoji") == ["Pack noto-emoji is used in this chat now."]
    assert (await chat.handle("/packs"))[0].strip().startswith("noto-emoji")
