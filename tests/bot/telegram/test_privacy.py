from __future__ import annotations

from sqlalchemy import func, select

from engine.db import Feedback, Message, User
from engine.service import ChatRef
from tests.auxil.telegram import ALICE, BOB, GROUP, OTHER_GROUP, private
from tests.bot.telegram.conftest import GROUP_REF, Harness, add_food_pack, buttons


async def test_logging_is_off_by_default_and_admins_switch_it(tg: Harness):
    await tg.send(tg.api.message(GROUP, BOB, "/logging"))
    assert "is <b>off</b>" in tg.api.texts(GROUP["id"])[-1]
    await tg.send(tg.api.message(GROUP, BOB, "/logging on"))
    assert tg.api.texts(GROUP["id"])[-1] == "Sorry, only this chat's admins can do that."
    assert not await tg.service.logging_enabled(GROUP_REF)
    await tg.send(tg.api.message(GROUP, ALICE, "/logging on"))
    assert await tg.service.logging_enabled(GROUP_REF)
    await tg.send(tg.api.message(GROUP, ALICE, "/logging OFF"))
    assert not await tg.service.logging_enabled(GROUP_REF)
    assert "now <b>off</b>" in tg.api.texts(GROUP["id"])[-1]


async def _count(tg: Harness, model, **where) -> int:
    async with tg.service.sessions() as session:
        q = select(func.count()).select_from(model)
        for key, value in where.items():
            q = q.where(getattr(model, key) == value)
        return int((await session.execute(q)).scalar_one())


async def test_forget_asks_then_deletes_the_user_everywhere(tg: Harness, tmp_path):
    await add_food_pack(tg.service, tmp_path / "food")
    await tg.service.enable_pack(ChatRef("telegram", str(OTHER_GROUP["id"])), "food")
    tg.api.add_chat(OTHER_GROUP, admins=[BOB])
    for chat in (GROUP, OTHER_GROUP):
        await tg.send(tg.api.message(chat, ALICE, "pizza with cheese"))
        await tg.send(tg.api.message(chat, BOB, "sushi please"))
    await tg.send(tg.api.message(GROUP, ALICE, "/sticker"))
    shown = tg.api.last_message(GROUP["id"])
    await tg.send(tg.api.callback(ALICE, shown, buttons(shown)[0][1]))  # Alice picks one: feedback
    assert await _count(tg, Feedback) == 1

    await tg.send(tg.api.message(GROUP, ALICE, "/forget"))
    confirm = tg.api.last_message(GROUP["id"])
    assert "in every chat" in confirm["text"]
    assert [t for t, _ in buttons(confirm)] == ["Yes, forget me", "Cancel"]
    assert await _count(tg, Message) == 4  # nothing yet

    await tg.send(tg.api.callback(BOB, confirm, buttons(confirm)[0][1]))  # not Bob's button
    assert (
        tg.api.called("answerCallbackQuery")[-1].params["text"] == "This button is for the person who asked."
    )
    assert await _count(tg, Message) == 4

    await tg.send(tg.api.callback(ALICE, confirm, buttons(confirm)[0][1]))
    assert tg.api.texts(GROUP["id"])[-1].startswith("Done: I deleted 2 messages")
    assert await _count(tg, Message) == 2 and await _count(tg, Feedback) == 0
    assert await _count(tg, User, platform_user_id=str(ALICE["id"])) == 0
    assert [t.speaker for t in await tg.service.recent(GROUP_REF)] == ["Bob"]
    assert len(tg.deps.suggestions) == 0  # her pending /sticker buttons are gone too


async def test_forget_can_be_cancelled_and_works_in_private(tg: Harness):
    await tg.send(tg.api.message(GROUP, ALICE, "hello"))
    await tg.send(tg.api.message(private(ALICE), ALICE, "/forget"))
    confirm = tg.api.last_message(ALICE["id"])
    await tg.send(tg.api.callback(ALICE, confirm, buttons(confirm)[1][1]))
    assert tg.api.texts(ALICE["id"])[-1] == "Cancelled: nothing was deleted."
    assert await _count(tg, Message) == 1


async def test_help_and_start_explain_commands_and_privacy(tg: Harness):
    await tg.send(tg.api.message(private(ALICE), ALICE, "/start"))
    await tg.send(tg.api.message(GROUP, BOB, "/help"))
    start, help_ = tg.api.texts(ALICE["id"])[-1], tg.api.texts(GROUP["id"])[-1]
    assert start.startswith("Hi! Add me to a group")
    for text in (start, help_):
        for needle in (
            "/sticker",
            "/packs",
            "/addpack",
            "/removepack",
            "/logging",
            "/forget",
            "@stickerpick_test_bot",
            "30 days",
            "privacy mode",
        ):
            assert needle in text, needle
