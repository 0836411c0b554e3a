"""The message listener: what is recorded, per channel and thread, edits, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import discord
from sqlalchemy import select

from bot.discord._refs import channel_chat
from engine.db import Message
from engine.service import UserRef
from tests.auxil.discord import OfflineServer, Person, snowflake


def chat_of(channel_id: int):
    return channel_chat(discord.Object(channel_id))


async def texts_in(server: OfflineServer, channel_id: int) -> list[tuple[str | None, str]]:
    return [(t.speaker, t.text) for t in await server.bot.service.recent(chat_of(channel_id))]


async def test_channels_and_threads_keep_their_own_conversation(server: OfflineServer, alice, bob):
    first = await server.say(alice, "guess what, I passed my driving test")
    await server.say(
        bob,
        "congrats!!",
        message_reference={"message_id": first["id"], "channel_id": str(server.channel_id)},
        type=19,
    )
    await server.say(bob, "meanwhile in the thread", channel_id=server.thread_id)
    assert await texts_in(server, server.channel_id) == [
        ("Alice", "guess what, I passed my driving test"),
        ("Bob", "congrats!!"),
    ]
    assert await texts_in(server, server.thread_id) == [("Bob", "meanwhile in the thread")]
    async with server.bot.service.sessions() as session:
        replies = list(
            (await session.execute(select(Message.reply_to).where(Message.reply_to.is_not(None)))).scalars()
        )
    assert replies == [first["id"]]


async def test_mentions_are_recorded_as_names(server: OfflineServer, alice, bob):
    await server.say(alice, f"<@{bob.id}> pizza tonight?", mentions=[bob.user])
    assert await texts_in(server, server.channel_id) == [("Alice", "@Bob pizza tonight?")]


async def test_what_is_not_recorded(server: OfflineServer, alice):
    await server.say(Person(snowflake(), "otherbot", bot=True), "I am a bot")
    await server.say(alice, "")  # no text: a picture, a sticker, or no message-content intent
    await server.say(alice, "via webhook", webhook_id=str(snowflake()))
    await server.say(alice, "pinned a message", type=6)  # a system message
    await server.say(alice, "somewhere unknown", channel_id=snowflake())  # not a text channel or thread here
    assert await texts_in(server, server.channel_id) == []


async def test_an_edit_replaces_the_text(server: OfflineServer, alice):
    message = await server.say(alice, "see you at 5")
    await server.edit(message, "see you at 6")
    assert await texts_in(server, server.channel_id) == [("Alice", "see you at 6")]


async def test_retention_runs_for_quiet_channels(server: OfflineServer, alice):
    service = server.bot.service
    old = datetime.now(UTC) - timedelta(days=service.settings.retention_days + 1)
    alice_ref = UserRef("discord", str(alice.id), "alice")
    await service.record(chat_of(server.channel_id), alice_ref, "long ago", at=old)
    await server.say(alice, "today")
    cog = server.bot.get_cog("History")
    await cog.retention()  # one run of the periodic task
    assert await texts_in(server, server.channel_id) == [("Alice", "today")]


async def test_a_sent_sticker_is_kept_for_retraining_only_where_logging_is_on(
    stocked: OfflineServer, alice, bob
):
    """Issue 7: a message with stickers → record_sticker, looked up in the server's packs."""
    from engine.db import TrainingSample
    from tests.bot.discord.conftest import sticker_id

    service = stocked.bot.service
    sid = sticker_id(stocked, "pizza_party")
    item = {"id": str(sid), "name": "pizza_party", "format_type": 1}
    await stocked.say(bob, "pizza tonight?")
    await stocked.say(alice, "", sticker_items=[item])  # logging off: nothing kept
    await service.set_logging(chat_of(stocked.channel_id), True)
    await stocked.say(alice, "", sticker_items=[item])  # only dialogue from before the opt-in: nothing
    await stocked.say(bob, "pizza tonight, for real?")
    await stocked.say(alice, "", sticker_items=[item])
    async with service.sessions() as session:
        rows = list((await session.execute(select(TrainingSample))).scalars())
    assert len(rows) == 1 and rows[0].kind == "sent"
    # only what was written after the opt-in
    assert [t["text"] for t in rows[0].context] == ["pizza tonight, for real?"]
    assert await texts_in(stocked, stocked.channel_id) == [
        ("Bob", "pizza tonight?"),
        ("Bob", "pizza tonight, for real?"),
    ]
