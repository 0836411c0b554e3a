from __future__ import annotations

import json
from collections.abc import AsyncIterator

import discord
import pytest

from bot.discord.settings import DiscordSettings
from engine.settings import Settings
from tests.auxil.discord import OfflineServer, Person, offline_server, snowflake, sticker_payload
from tests.auxil.media import apng_bytes, gif_bytes, lottie_json, png_bytes

PNG, APNG, GIF, LOTTIE = (
    discord.StickerFormatType.png,
    discord.StickerFormatType.apng,
    discord.StickerFormatType.gif,
    discord.StickerFormatType.lottie,
)


def server_stickers() -> list[tuple[dict, bytes]]:
    """One sticker of each format a Discord server can have (distinct pictures: the engine merges equal
    ones). Name, related emoji and description are what the bag-of-words test model reads."""
    lottie = json.dumps(lottie_json(128, 128, frames=10)).encode()  # Discord serves plain Lottie JSON
    return [
        (sticker_payload(snowflake(), 0, "pizza_party", PNG, "🍕", "pizza slice cheese"), png_bytes(64, 64)),
        (
            sticker_payload(snowflake(), 0, "sushi_time", APNG, "sushi", "sushi fish rice"),
            apng_bytes(w=48, h=48),
        ),
        (
            sticker_payload(snowflake(), 0, "birthday", GIF, "tada", "birthday cake candles"),
            gif_bytes(w=40, h=40),
        ),
        (sticker_payload(snowflake(), 0, "taco_dance", LOTTIE, "taco", "taco tortilla salsa"), lottie),
    ]


def sticker_id(server: OfflineServer, name: str) -> int:
    return next(s.id for s in server.guild.stickers if s.name == name)


@pytest.fixture
def settings(settings: Settings) -> DiscordSettings:
    """The test settings as the adapter reads them: the engine's (tests/conftest.py) and Discord's defaults."""
    return DiscordSettings.model_construct(_fields_set=settings.model_fields_set, **dict(settings))


@pytest.fixture
async def server(migrated: Settings, service, monkeypatch) -> AsyncIterator[OfflineServer]:
    async with offline_server(migrated, service, monkeypatch, stickers=server_stickers()) as s:
        yield s
        assert s.api.unexpected == []


@pytest.fixture
def alice() -> Person:
    return Person(snowflake(), "alice")


@pytest.fixture
def bob() -> Person:
    return Person(snowflake(), "bob")


@pytest.fixture
def manager() -> Person:
    person = Person(snowflake(), "mod")
    person.permissions.manage_expressions = True
    return person


@pytest.fixture
async def stocked(server: OfflineServer, manager: Person) -> OfflineServer:
    """The server with its own stickers imported by a manager."""
    answer = await server.slash(manager, "addpack")
    assert answer.content and answer.content.startswith("Added **server**: 4 new"), answer.content
    return server
