"""/sticker end to end: the real cog and command tree, fed Discord payloads, against the fake API."""

from __future__ import annotations

import logging

import discord
from sqlalchemy import select

from bot.discord import _texts as texts
from bot.discord._refs import channel_chat
from engine.db import Feedback
from tests.auxil.discord import OfflineServer, Person, http_error
from tests.auxil.media import png_bytes
from tests.bot.discord.conftest import sticker_id


async def feedback_rows(server: OfflineServer) -> list[tuple[int, str]]:
    service = server.bot.service
    async with service.sessions() as session:
        rows = await session.execute(select(Feedback.sticker_id, Feedback.kind).order_by(Feedback.id))
        return [(sid, kind) for sid, kind in rows]


async def test_no_packs_is_a_clear_ephemeral_answer(server: OfflineServer, alice: Person):
    await server.say(alice, "anyone hungry?")
    answer = await server.slash(alice, "sticker")
    assert answer.type == 5 and answer.ephemeral  # deferred ("thinking…") at once, only alice sees it
    assert answer.content == texts.NO_PACKS
    assert server.api.posted == {}


async def test_posts_the_fitting_server_sticker_as_a_real_sticker(stocked: OfflineServer, alice, bob):
    await stocked.say(alice, "what should we order tonight")
    await stocked.say(bob, "sushi with fish and rice!")
    answer = await stocked.slash(alice, "sticker", {"k": 3})
    (post,) = stocked.api.channel_messages(stocked.channel_id)
    assert post.sticker_ids == [sticker_id(stocked, "sushi_time")] and post.files == []
    assert post.content == f"-# /sticker · <@{alice.id}>"
    request = next(r for r in stocked.api.requests if r.path == "/channels/{channel_id}/messages")
    assert request.json["allowed_mentions"]["parse"] == []  # the attribution never pings
    assert answer.ephemeral and answer.content.startswith("Posted **🍣 sushi\\_time** from *server*.")
    options = answer.select_options()
    assert len(options) == 3 and options[0]["default"] and options[0]["label"] == "1. 🍣 sushi_time"
    assert all(o["description"] == "server" for o in options)


async def test_picking_another_replaces_the_post_and_is_feedback(stocked: OfflineServer, alice):
    await stocked.say(alice, "birthday cake with candles tonight")
    answer = await stocked.slash(alice, "sticker", {"k": 3})
    (first,) = stocked.api.channel_messages(stocked.channel_id)
    second_label = answer.select_options()[1]["label"]

    pick = await stocked.choose(alice, answer, "1")
    assert pick.type == 6  # deferred update of the ephemeral answer
    (now,) = stocked.api.channel_messages(stocked.channel_id)
    assert stocked.api.posted[first.id].deleted and now.id != first.id
    assert answer.content.startswith(f"Posted **{texts.md(second_label[3:])}")  # the answer was edited
    options = answer.select_options()
    assert options[1]["default"] and not options[0]["default"]
    rows = await feedback_rows(stocked)
    assert len(rows) == 1 and rows[0][1] == "picked"

    again = await stocked.choose(alice, answer, "1")  # the one already posted: kept, still a pick
    assert again.type == 6 and "already posted" in answer.content
    assert len(stocked.api.channel_messages(stocked.channel_id)) == 1
    assert len(await feedback_rows(stocked)) == 2


async def test_remove_deletes_the_post(stocked: OfflineServer, alice):
    await stocked.say(alice, "taco tuesday with salsa")
    answer = await stocked.slash(alice, "sticker")
    await stocked.press(alice, answer)
    assert stocked.api.channel_messages(stocked.channel_id) == []
    assert answer.content.startswith(texts.REMOVED)
    assert answer.component(2)["disabled"]
    await stocked.choose(alice, answer, "0")  # changed her mind: pick one again
    assert len(stocked.api.channel_messages(stocked.channel_id)) == 1


async def test_only_the_requester_may_choose(stocked: OfflineServer, alice, bob):
    await stocked.say(alice, "pizza slice with cheese")
    answer = await stocked.slash(alice, "sticker")
    refused = await stocked.choose(bob, answer, "1")
    assert refused.ephemeral and refused.content == texts.ONLY_REQUESTER.format(name="Alice")
    assert len(stocked.api.channel_messages(stocked.channel_id)) == 1
    assert await feedback_rows(stocked) == []


async def test_an_uploaded_sticker_is_posted_as_a_picture(server: OfflineServer, alice, manager):
    from tests.auxil.discord import attachment_payload

    data = png_bytes(32, 32, (10, 200, 90, 255))
    attachment = attachment_payload("ramen noodles.png", len(data), "image/png")
    server.api.cdn[attachment["url"]] = data
    await server.slash(manager, "addpack", {"name": "noodles"}, attachments={"file": attachment})
    await server.say(alice, "ramen noodles for lunch")
    answer = await server.slash(alice, "sticker")
    (post,) = server.api.channel_messages(server.channel_id)
    assert post.sticker_ids == []
    ((filename, body),) = post.files
    assert filename == "ramen_noodles.png" and body.startswith(b"\x89PNG")
    assert "**ramen noodles** from *noodles*" in answer.content  # the content hash is not shown


async def test_a_thread_has_its_own_conversation_and_the_servers_packs(stocked: OfflineServer, alice):
    await stocked.say(alice, "pizza slice with extra cheese")
    await stocked.say(alice, "sushi with fish and rice", channel_id=stocked.thread_id)
    await stocked.slash(alice, "sticker", channel_id=stocked.thread_id)
    (post,) = stocked.api.channel_messages(stocked.thread_id)
    assert post.sticker_ids == [sticker_id(stocked, "sushi_time")]
    assert stocked.api.channel_messages(stocked.channel_id) == []


async def test_about_ranks_for_its_text(stocked: OfflineServer, alice):
    await stocked.say(alice, "pizza slice with extra cheese")
    await stocked.slash(alice, "sticker", {"about": "taco tortilla salsa"})
    (post,) = stocked.api.channel_messages(stocked.channel_id)
    assert post.sticker_ids == [sticker_id(stocked, "taco_dance")]


async def test_per_channel_cooldown(stocked: OfflineServer, alice):
    from bot.discord._cog import STICKER_RATE

    await stocked.say(alice, "pizza")
    await stocked.say(alice, "pizza", channel_id=stocked.thread_id)
    for _ in range(STICKER_RATE):
        assert (await stocked.slash(alice, "sticker")).content.startswith("Posted")
    slow = await stocked.slash(alice, "sticker")
    assert slow.type == 4 and slow.ephemeral and slow.content.startswith("Easy there: `/sticker` can be used")
    assert len(stocked.api.channel_messages(stocked.channel_id)) == STICKER_RATE
    other = await stocked.slash(alice, "sticker", channel_id=stocked.thread_id)  # another channel: not slowed
    assert other.content.startswith("Posted")


async def test_missing_permissions_are_explained(stocked: OfflineServer, alice, manager):
    await stocked.say(alice, "pizza slice")
    stocked.app_permissions.send_messages = False
    answer = await stocked.slash(alice, "sticker")
    assert answer.type == 4 and answer.ephemeral and answer.content == texts.CANNOT_SEND_HERE

    stocked.app_permissions.send_messages = True
    stocked.api.fail("POST", "/channels/{channel_id}/messages", http_error(403, 50013, "Missing Permissions"))
    answer = await stocked.slash(alice, "sticker")
    assert answer.content == texts.CANNOT_SEND_HERE and stocked.api.posted == {}


async def test_no_attach_files_for_pictures(server: OfflineServer, alice, manager):
    from tests.auxil.discord import attachment_payload

    data = png_bytes(32, 32, (10, 200, 90, 255))
    attachment = attachment_payload("ramen.png", len(data))
    server.api.cdn[attachment["url"]] = data
    await server.slash(manager, "addpack", attachments={"file": attachment})
    await server.say(alice, "ramen")
    server.app_permissions.attach_files = False
    answer = await server.slash(alice, "sticker")
    assert answer.content == texts.CANNOT_ATTACH and server.api.posted == {}


async def test_a_failing_interaction_is_answered_and_the_bot_goes_on(stocked: OfflineServer, alice, caplog):
    service = stocked.bot.service
    original = service.suggest

    async def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    service.suggest = broken
    await stocked.say(alice, "pizza")
    with caplog.at_level(logging.ERROR, logger="bot.discord"):
        answer = await stocked.slash(alice, "sticker")
    assert answer.content == texts.FAILED
    assert "database on fire" in caplog.text and "offline-token" not in caplog.text
    service.suggest = original
    assert (await stocked.slash(alice, "sticker")).content.startswith("Posted")


async def test_a_deleted_guild_sticker_falls_back_to_its_picture(stocked: OfflineServer, alice):
    state = stocked.bot._connection
    guild = stocked.guild
    pizza = sticker_id(stocked, "pizza_party")
    state.parse_guild_stickers_update(
        {
            "guild_id": str(guild.id),
            "stickers": [s for s in stocked.api.guild_stickers[guild.id] if int(s["id"]) != pizza],
        }
    )
    await stocked.say(alice, "pizza slice with cheese")
    await stocked.slash(alice, "sticker")
    (post,) = stocked.api.channel_messages(stocked.channel_id)
    assert post.sticker_ids == [] and post.files and post.files[0][0] == "removed_sticker.png"


async def test_feedback_names_the_channel(stocked: OfflineServer, alice):
    await stocked.say(alice, "sushi")
    answer = await stocked.slash(alice, "sticker")
    await stocked.choose(alice, answer, "1")
    service = stocked.bot.service
    from engine.db import Chat

    async with service.sessions() as session:
        chat = (await session.execute(select(Chat).join(Feedback, Feedback.chat_id == Chat.id))).scalar_one()
    assert chat.platform_chat_id == channel_chat(discord.Object(stocked.channel_id)).chat_id


async def test_a_failing_pick_keeps_the_post_and_the_menu(stocked: OfflineServer, alice):
    await stocked.say(alice, "pizza slice with cheese")
    answer = await stocked.slash(alice, "sticker")
    (post,) = stocked.api.channel_messages(stocked.channel_id)
    menu = answer.components
    stocked.api.fail("POST", "/channels/{channel_id}/messages", http_error(403, 50013, "Missing Permissions"))
    pick = await stocked.choose(alice, answer, "1")
    (followup,) = pick.followups  # a message of its own, only alice sees it
    assert followup["content"] == texts.CANNOT_SEND_HERE and followup["flags"] & 64
    assert stocked.api.channel_messages(stocked.channel_id) == [post] and answer.components == menu


async def test_a_server_that_installed_only_the_commands(server: OfflineServer, alice):
    from tests.auxil.discord import settle, snowflake

    payload = server._interaction(2, alice, server.command_data("sticker"))
    payload["guild_id"] = payload["channel"]["guild_id"] = str(snowflake())  # a server the bot is not in
    server.bot._connection.parse_interaction_create(payload)
    await settle()
    answer = server.api.answers[payload["token"]]
    assert answer.ephemeral and answer.content == texts.NOT_A_MEMBER
