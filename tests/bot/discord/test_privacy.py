"""/logging, /forget and /help."""

from __future__ import annotations

import discord
from sqlalchemy import func, select

from bot.discord import _texts as texts
from bot.discord._refs import channel_chat
from engine.db import Feedback, Message
from tests.auxil.discord import OfflineServer


async def test_logging_is_off_until_a_manager_turns_it_on_here(server: OfflineServer, manager, alice):
    service = server.bot.service
    here, thread = (
        channel_chat(discord.Object(server.channel_id)),
        channel_chat(discord.Object(server.thread_id)),
    )
    state = await server.slash(manager, "logging")
    assert state.ephemeral and state.content == texts.LOGGING_STATE.format(
        state="off", channel=f"<#{server.channel_id}>"
    )
    turned = await server.slash(manager, "logging", {"state": "on"})
    assert not turned.ephemeral  # everyone in the channel should know
    assert turned.content.startswith(
        f"<@{manager.id}> turned logging for retraining **on** in <#{server.channel_id}>"
    )
    assert turned.allowed_mentions == {"parse": []}
    assert await service.logging_enabled(here) and not await service.logging_enabled(thread)
    refused = await server.slash(alice, "logging", {"state": "off"})
    assert refused.content == texts.MANAGERS_ONLY and await service.logging_enabled(here)
    await server.slash(manager, "logging", {"state": "off"})
    assert not await service.logging_enabled(here)


async def test_forget_deletes_the_callers_messages_and_choices_only(stocked: OfflineServer, alice, bob):
    await stocked.say(alice, "pizza slice with cheese")
    await stocked.say(bob, "sushi please")
    await stocked.say(alice, "and in the thread", channel_id=stocked.thread_id)
    answer = await stocked.slash(alice, "sticker")
    await stocked.choose(alice, answer, "1")
    forgot = await stocked.slash(alice, "forget")
    assert forgot.ephemeral and forgot.content == texts.FORGOT.format(n=2, s="s")
    service = stocked.bot.service
    async with service.sessions() as session:
        left = list((await session.execute(select(Message.text))).scalars())
        choices = (await session.execute(select(func.count()).select_from(Feedback))).scalar_one()
    assert left == ["sushi please"] and choices == 0
    stocked.advance(60)
    again = await stocked.slash(alice, "forget")
    assert again.content == texts.FORGOT.format(n=0, s="s")


async def test_forget_has_a_per_user_cooldown(server: OfflineServer, alice, bob):
    await server.slash(alice, "forget")
    assert (await server.slash(alice, "forget")).content.startswith("Easy there: `/forget`")
    assert (await server.slash(bob, "forget")).content.startswith("Done")


async def test_help(server: OfflineServer, alice):
    answer = await server.slash(alice, "help")
    assert answer.type == 4 and answer.ephemeral
    for command in ("/sticker", "/packs", "/addpack", "/removepack", "/logging on|off", "/forget"):
        assert f"`{command}" in answer.content
    assert "30 days" in answer.content and texts.NO_MESSAGE_CONTENT_NOTE not in answer.content
    assert len(answer.content) <= 2000


async def test_help_without_the_message_content_intent(migrated, service, monkeypatch, alice):
    from tests.auxil.discord import offline_server

    migrated.discord_message_content = False
    async with offline_server(migrated, service, monkeypatch) as server:
        assert not server.bot.intents.message_content
        answer = await server.slash(alice, "help")
        assert answer.content.endswith(texts.NO_MESSAGE_CONTENT_NOTE)
