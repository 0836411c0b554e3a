"""Answers in the language of the user's Discord client (``interaction.locale``), and the commands'
descriptions localized in the payload Discord receives."""

from __future__ import annotations

import discord

from bot.discord import _texts as texts
from tests.auxil.discord import OfflineServer, Person, snowflake


def _in(name: str, language: str) -> str:
    return texts.CATALOG.text(name, language)


async def test_a_russian_client_gets_russian_answers(stocked: OfflineServer, manager: Person, alice: Person):
    alice.locale = "ru"
    manager.locale = "es-ES"
    packs = await stocked.slash(alice, "packs")
    assert packs.content.startswith("Наборы стикеров на этом сервере:\n• **server** — стикеров: 4")
    refused = await stocked.slash(alice, "logging", {"state": "on"})  # a check failing: still Russian
    assert refused.content == _in("MANAGERS_ONLY", "ru")
    state = await stocked.slash(manager, "logging")
    assert state.content == _in("LOGGING_STATE", "es").format(
        state="desactivado", channel=f"<#{stocked.channel_id}>"
    )
    quiet = await stocked.slash(alice, "sticker")  # the engine's typed "no conversation", worded here
    assert quiet.content == "Здесь ещё нет разговора: сначала напишите что-нибудь."
    stocked.advance(60)  # past the per-channel rate limit
    await stocked.say(alice, "pizza with lots of cheese")
    answer = await stocked.slash(alice, "sticker")
    assert answer.content.startswith("Опубликовано: **")
    assert answer.component(2)["label"] == "Убрать"  # the menu's own texts too
    bob = Person(snowflake(), "bob", locale="pt-BR")
    other = await stocked.press(bob, answer)  # someone else presses: answered in their language
    assert other.content == _in("ONLY_REQUESTER", "pt").format(name="Alice")
    assert (await stocked.slash(Person(snowflake(), "eve", locale="de"), "help")).content.startswith(
        "**stickerpick** answers `/sticker`"
    )


async def test_the_synced_commands_carry_their_translations(server: OfflineServer):
    commands = {c["name"]: c for c in server.api.synced["global"]}
    sticker = commands["sticker"]
    assert sticker["description"] == texts.CATALOG.source["CMD_STICKER"]
    localized = sticker["description_localizations"]
    assert localized["ru"] == _in("CMD_STICKER", "ru")
    assert localized["es-ES"] == localized["es-419"] == _in("CMD_STICKER", "es")
    assert localized["pt-BR"] == _in("CMD_STICKER", "pt")
    assert "de" not in localized and "en-US" not in localized  # English is the default, not a translation
    about = {o["name"]: o for o in sticker["options"]}["about"]
    assert about["description_localizations"]["ru"] == _in("CMD_STICKER_ABOUT", "ru")
    assert not sticker.get("name_localizations")  # the names stay /sticker, /packs, … everywhere
    assert discord.Locale.russian.value == "ru"
