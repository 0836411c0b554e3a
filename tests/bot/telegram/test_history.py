from __future__ import annotations

from sqlalchemy import select

from engine.db import Message
from tests.auxil.telegram import ALICE, BOB, GROUP, private
from tests.bot.telegram.conftest import GROUP_REF, Harness


async def _rows(tg: Harness) -> list[tuple[str, str | None, str | None]]:
    async with tg.service.sessions() as session:
        rows = await session.execute(
            select(Message.text, Message.platform_message_id, Message.reply_to).order_by(Message.id)
        )
        return [(t, m, r) for t, m, r in rows]


async def test_group_text_and_captions_are_recorded_with_speaker_and_reply(tg: Harness):
    first = tg.api.message(GROUP, ALICE, "I passed my driving test!")
    await tg.send(first)
    first_id = first["message"]["message_id"]
    await tg.send(tg.api.message(GROUP, BOB, "no way, congrats", reply_to=first_id))
    photo = [{"file_id": "p", "file_unique_id": "p1", "width": 10, "height": 10}]
    await tg.send(tg.api.message(GROUP, ALICE, None, photo=photo, caption="look at my licence"))
    turns = await tg.service.recent(GROUP_REF)
    assert [(t.speaker, t.text) for t in turns] == [
        ("Alice", "I passed my driving test!"),
        ("Bob", "no way, congrats"),
        ("Alice", "look at my licence"),
    ]
    assert (await _rows(tg))[1][2] == str(first_id)


async def test_commands_service_messages_and_private_chats_are_not_conversation(tg: Harness):
    await tg.send(tg.api.message(GROUP, ALICE, "/help"))
    await tg.send(tg.api.message(GROUP, ALICE, None, new_chat_members=[BOB]))
    await tg.send(
        tg.api.message(GROUP, ALICE, None, pinned_message={"message_id": 1, "date": 0, "chat": GROUP})
    )
    await tg.send(tg.api.message(private(ALICE), ALICE, "just between us"))
    assert await _rows(tg) == []


async def test_edits_update_history_and_edited_commands_do_not_rerun(tg: Harness):
    update = tg.api.message(GROUP, ALICE, "see you at 5")
    await tg.send(update)
    message_id = update["message"]["message_id"]
    await tg.send(tg.api.message(GROUP, ALICE, "see you at 6", edited=True, message_id=message_id))
    assert [t.text for t in await tg.service.recent(GROUP_REF)] == ["see you at 6"]
    calls = len(tg.api.calls)
    await tg.send(tg.api.message(GROUP, ALICE, "/help", edited=True, message_id=message_id + 100))
    assert len(tg.api.calls) == calls


async def test_anonymous_admin_messages_are_recorded_without_a_user(tg: Harness):
    anonymous = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
    await tg.send(tg.api.message(GROUP, anonymous, "announcement: party on friday", sender_chat=GROUP))
    [turn] = await tg.service.recent(GROUP_REF)
    assert turn.from_id is None and turn.text == "announcement: party on friday"


async def test_a_sent_sticker_is_kept_for_retraining_only_where_logging_is_on(tg: Harness):
    """Issue 7: a sticker message in a group → record_sticker (its file_unique_id, looked up in the packs)."""
    from engine.db import TrainingSample
    from tests.auxil.media import webp_bytes

    food = tg.api.add_sticker_set("Food_by_x", "Food", [("🍕", "static", webp_bytes())])
    await tg.send(tg.api.message(GROUP, ALICE, "/addpack Food_by_x"))
    await tg.send(tg.api.message(GROUP, BOB, "pizza tonight?"))
    await tg.send(tg.api.message(GROUP, ALICE, None, sticker=food["stickers"][0]))  # logging off: nothing
    await tg.service.set_logging(GROUP_REF, True)
    await tg.send(tg.api.message(GROUP, ALICE, None, sticker=food["stickers"][0]))  # nothing said since
    await tg.send(tg.api.message(GROUP, BOB, "pizza tonight, for real?"))
    await tg.send(tg.api.message(GROUP, ALICE, None, sticker=food["stickers"][0]))
    async with tg.service.sessions() as session:
        rows = list((await session.execute(select(TrainingSample))).scalars())
    assert len(rows) == 1 and rows[0].kind == "sent"
    # only what was written after the opt-in
    assert [t["text"] for t in rows[0].context] == ["pizza tonight, for real?"]
    assert [t.text for t in await tg.service.recent(GROUP_REF)] == [
        "pizza tonight?",
        "pizza tonight, for real?",
    ]  # history: text only
