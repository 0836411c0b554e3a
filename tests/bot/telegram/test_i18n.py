"""Each update is answered in its sender's language (``from_user.language_code``), through the real handlers."""

from __future__ import annotations

import asyncio

from telegram import Update

from bot.telegram import _texts as texts
from tests.auxil.telegram import ALICE, BOB, GROUP
from tests.bot.telegram.conftest import Harness, add_food_pack, buttons

ALICE_RU = {**ALICE, "language_code": "ru"}
BOB_PT = {**BOB, "language_code": "pt-br"}


def _ru(name: str) -> str:
    return texts.CATALOG.text(name, "ru")


async def test_a_russian_user_gets_russian_answers_and_buttons(tg: Harness, tmp_path):
    await tg.send(tg.api.message(GROUP, ALICE_RU, "/packs"))
    assert tg.api.texts(GROUP["id"])[-1] == _ru("NO_PACKS")
    assert tg.api.texts(GROUP["id"])[-1].startswith("В этом чате пока нет наборов стикеров")

    await tg.send(tg.api.message(GROUP, ALICE_RU, "/logging"))
    assert tg.api.texts(GROUP["id"])[-1] == _ru("LOGGING_STATE").format(state="выключено")

    await add_food_pack(tg.service, tmp_path / "food")
    await tg.send(tg.api.message(GROUP, ALICE_RU, "/sticker"))  # the engine's typed "no conversation"
    assert tg.api.texts(GROUP["id"])[-1] == "Здесь ещё нет разговора: сначала напишите что-нибудь."
    tg.service.settings.sticker_cooldown_s = 60
    await tg.send(tg.api.message(GROUP, BOB, "birthday cake with candles!"))
    await tg.send(tg.api.message(GROUP, ALICE_RU, "/sticker"))
    [call] = tg.api.sent(GROUP["id"], "sendSticker")
    assert [t for t, _ in buttons(call)][-2:] == ["✓ Оставить", "✕ Ничего не подходит"]
    await tg.send(tg.api.message(GROUP, ALICE_RU, "/sticker"))
    assert tg.api.texts(GROUP["id"])[-1].startswith("Не так быстро — попробуйте /sticker снова через")

    await tg.send(tg.api.message(GROUP, ALICE_RU, "/forget"))
    confirm = tg.api.last_message(GROUP["id"])
    assert confirm["text"] == _ru("FORGET_CONFIRM").format(name="Alice")
    assert [t for t, _ in buttons(confirm)] == ["Да, забудь меня", "Отмена"]
    await tg.send(tg.api.callback(BOB, confirm, buttons(confirm)[0][1]))  # Bob's language: English
    assert (
        tg.api.called("answerCallbackQuery")[-1].params["text"] == "This button is for the person who asked."
    )
    await tg.send(tg.api.callback(ALICE_RU, confirm, buttons(confirm)[0][1]))
    assert tg.api.texts(GROUP["id"])[-1].startswith("Готово: я удалил ваши сообщения")


async def test_concurrent_updates_keep_their_own_language(tg: Harness):
    """Two chats' updates handled at once (the update processor's tasks): each answer in its sender's
    language, and an unknown or missing language is English."""
    updates = [
        tg.api.message(GROUP, ALICE_RU, "/help"),
        tg.api.message({**GROUP, "id": GROUP["id"] - 1}, BOB_PT, "/help"),
        tg.api.message({**GROUP, "id": GROUP["id"] - 2}, {**BOB, "language_code": "de"}, "/help"),
    ]
    processor = tg.app.update_processor
    await asyncio.gather(
        *(
            processor.process_update(u, tg.app.process_update(u))
            for u in (Update.de_json(raw, tg.app.bot) for raw in updates)
        )
    )
    ru, pt, de = (tg.api.texts(GROUP["id"] - i)[-1] for i in range(3))
    assert ru.startswith("<b>stickerpick</b> отвечает на /sticker")
    assert pt.startswith("<b>stickerpick</b> responde a /sticker com as figurinhas")
    assert de.startswith("<b>stickerpick</b> answers /sticker")
