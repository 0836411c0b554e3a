"""The bot itself: intents, sharding, the command tree and its sync, start-up failures, the token."""

from __future__ import annotations

import logging

import discord
import pytest
from pydantic import SecretStr

from bot.discord import build_bot, run
from bot.discord._bot import INTENT_MISSING, TOKEN_REFUSED, StickerBot, serve
from bot.discord.settings import DiscordSettings
from engine.settings import Settings
from tests.auxil.discord import offline_server

GUILD_COMMANDS = {"sticker", "packs", "addpack", "removepack", "logging"}
EVERYWHERE = {"forget", "help"}


async def test_intents_and_sharding(migrated: Settings, service):
    bot = build_bot(migrated, service)
    assert isinstance(bot, StickerBot) and not isinstance(bot, discord.AutoShardedClient)
    assert bot.intents.message_content and bot.intents.guild_messages and bot.intents.expressions
    assert not bot.intents.members and not bot.intents.presences and not bot.intents.dm_messages
    migrated.discord_sharded, migrated.discord_shard_count, migrated.discord_message_content = True, 4, False
    sharded = build_bot(migrated, service)
    assert isinstance(sharded, discord.AutoShardedClient) and sharded.shard_count == 4
    assert not sharded.intents.message_content


async def test_login_adds_the_cogs_and_syncs_global_commands(
    migrated: Settings, service, monkeypatch, caplog
):
    with caplog.at_level(logging.DEBUG):
        async with offline_server(migrated, service, monkeypatch) as server:
            assert set(server.bot.cogs) == {"History", "Stickers"}
            commands = {c["name"]: c for c in server.api.synced["global"]}
            assert set(commands) == GUILD_COMMANDS | EVERYWHERE
            for name in GUILD_COMMANDS:
                assert commands[name]["contexts"] == [0], name  # servers only
            addpack = {o["name"]: o for o in commands["addpack"]["options"]}
            assert addpack["file"]["type"] == discord.AppCommandOptionType.attachment.value
            assert commands["sticker"]["options"][0]["max_value"] == 25
            assert {c["name"] for c in commands["logging"]["options"][0]["choices"]} == {"on", "off"}
    assert "offline-token" not in caplog.text


async def test_development_servers_get_the_commands_instantly(migrated: Settings, service, monkeypatch):
    migrated.discord_guild_ids = [111, 222]
    async with offline_server(migrated, service, monkeypatch) as server:
        assert set(server.api.synced) == {"111", "222"}
        assert {c["name"] for c in server.api.synced["111"]} == GUILD_COMMANDS | EVERYWHERE


async def test_no_sync_when_turned_off(migrated: Settings, service, monkeypatch):
    migrated.discord_sync_commands = False
    async with offline_server(migrated, service, monkeypatch) as server:
        assert server.api.synced == {} and not any("commands" in r for r in server.api.routes())


async def test_serve_explains_a_refused_token_and_closes_the_service(migrated: Settings, monkeypatch):
    migrated.discord_token = SecretStr("secret-token-value")
    closed = []

    async def refuse(self, token: str, *, reconnect: bool = True) -> None:
        assert token == "secret-token-value"
        raise discord.LoginFailure("Improper token has been passed.")

    from engine.service import StickerService

    original_close = StickerService.close

    async def close(self) -> None:
        closed.append(True)
        await original_close(self)

    monkeypatch.setattr(StickerBot, "start", refuse)
    monkeypatch.setattr(StickerService, "close", close)
    with pytest.raises(SystemExit) as exc:
        await serve(migrated)
    assert str(exc.value) == TOKEN_REFUSED and "secret-token-value" not in str(exc.value) and closed


async def test_serve_explains_the_missing_intent(migrated: Settings, monkeypatch):
    migrated.discord_token = SecretStr("t")

    async def refuse(self, token: str, *, reconnect: bool = True) -> None:
        raise discord.PrivilegedIntentsRequired(None)

    monkeypatch.setattr(StickerBot, "start", refuse)
    with pytest.raises(SystemExit, match="Message Content Intent"):
        await serve(migrated)
    assert "STICKERPICK_DISCORD_MESSAGE_CONTENT=false" in INTENT_MISSING


def test_run_needs_a_token(settings: Settings):
    with pytest.raises(SystemExit, match="DISCORD_BOT_TOKEN"):
        run(settings)


def test_the_token_stays_out_of_reprs():
    settings = DiscordSettings(_env_file=None, DISCORD_BOT_TOKEN="very-secret")
    assert "very-secret" not in repr(settings) and settings.discord_token.get_secret_value() == "very-secret"
