from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.db import Feedback
from tests.auxil.telegram import ALICE, BOB, GROUP, private
from tests.bot.telegram.conftest import GROUP_REF, Harness, add_food_pack, buttons


async def _ask(tg: Harness, text: str = "/sticker 3", user: dict = BOB, **kw) -> int:
    update = tg.api.message(GROUP, user, text, **kw)
    await tg.send(update)
    return update["message"]["message_id"]


async def _feedback(tg: Harness) -> list[tuple[int, str]]:
    async with tg.service.sessions() as session:
        rows = (await session.execute(select(Feedback.sticker_id, Feedback.kind).order_by(Feedback.id))).all()
    return [(int(a), b) for a, b in rows]


async def test_sticker_replies_in_the_thread_with_the_best_sticker_and_buttons(tg: Harness, tmp_path):
    await add_food_pack(tg.service, tmp_path / "food")
    await tg.send(tg.api.message(GROUP, ALICE, "what a day, it's my birthday", thread_id=77))
    await tg.send(tg.api.message(GROUP, BOB, "birthday cake with candles!", thread_id=77))
    command_id = await _ask(tg, thread_id=77)

    [call] = tg.api.sent(GROUP["id"], "sendSticker")
    assert call.params["reply_parameters"]["message_id"] == command_id
    assert call.params["message_thread_id"] == 77
    assert "sticker" in call.uploads  # a local pack has no Telegram file_id: the still is uploaded as WebP
    assert call.uploads["sticker"][8:12] == b"WEBP"
    pending = tg.pending()
    assert pending.items[0].platform_sticker_id == "cake"
    labels = [text for text, _ in buttons(call)]
    assert labels == [f"{i.rank + 1} {i.emoji}" for i in pending.items[1:]] + ["✓ Keep", "✕ None fit"]
    assert len(pending.items) == 3 and pending.requester_id == BOB["id"]


async def test_swapping_sends_the_chosen_sticker_instead_and_records_it(tg: Harness, tmp_path):
    await add_food_pack(tg.service, tmp_path / "food")
    await tg.send(tg.api.message(GROUP, ALICE, "birthday cake with candles!"))
    command_id = await _ask(tg)
    first = tg.api.last_message(GROUP["id"])
    second_label, second_data = buttons(first)[0]

    await tg.send(tg.api.callback(BOB, first, second_data))

    stickers = tg.api.sent(GROUP["id"], "sendSticker")
    assert len(stickers) == 2
    assert stickers[1].params["reply_parameters"]["message_id"] == command_id
    assert (GROUP["id"], first["message_id"]) in tg.api.deleted  # the one it replaces is gone
    chosen = tg.pending().items[1]
    assert second_label.startswith("2")
    assert await _feedback(tg) == [(chosen.sticker_id, "picked")]
    # the new sticker's buttons offer the first one back, and keeping it records nothing twice
    swapped = tg.api.last_message(GROUP["id"])
    assert buttons(swapped)[0][0].startswith("1")
    await tg.send(tg.api.callback(BOB, swapped, buttons(swapped)[-2][1]))
    assert await _feedback(tg) == [(chosen.sticker_id, "picked")]
    assert "reply_markup" not in tg.api.last_message(GROUP["id"])


async def test_keep_records_the_first_sticker_and_removes_the_buttons(tg: Harness, tmp_path):
    await add_food_pack(tg.service, tmp_path / "food")
    await tg.send(tg.api.message(GROUP, ALICE, "sushi and rice with fish"))
    await _ask(tg)
    shown = tg.api.last_message(GROUP["id"])
    pending = tg.pending()
    swap, keep = buttons(shown)[0][1], buttons(shown)[-2][1]
    await tg.send(tg.api.callback(BOB, shown, keep))
    assert await _feedback(tg) == [(pending.items[0].sticker_id, "picked")]
    assert "reply_markup" not in tg.api.messages[(GROUP["id"], shown["message_id"])]
    assert tg.api.called("answerCallbackQuery")[-1].params.get("text") == "Kept."
    # the suggestion is settled: later presses on it say it expired
    await tg.send(tg.api.callback(BOB, shown, swap))
    assert "expired" in tg.api.called("answerCallbackQuery")[-1].params["text"]


async def test_none_fit_deletes_the_sticker_without_feedback(tg: Harness, tmp_path):
    await add_food_pack(tg.service, tmp_path / "food")
    await tg.send(tg.api.message(GROUP, ALICE, "taco with salsa"))
    await _ask(tg)
    shown = tg.api.last_message(GROUP["id"])
    await tg.send(tg.api.callback(BOB, shown, buttons(shown)[-1][1]))
    assert (GROUP["id"], shown["message_id"]) in tg.api.deleted
    assert await _feedback(tg) == []


async def test_only_the_requester_may_choose(tg: Harness, tmp_path):
    await add_food_pack(tg.service, tmp_path / "food")
    await tg.send(tg.api.message(GROUP, ALICE, "pizza with extra cheese"))
    await _ask(tg)
    shown = tg.api.last_message(GROUP["id"])
    await tg.send(tg.api.callback(ALICE, shown, buttons(shown)[0][1]))
    answer = tg.api.called("answerCallbackQuery")[-1].params["text"]
    assert answer.startswith("Only Bob can choose")
    assert len(tg.api.sent(GROUP["id"], "sendSticker")) == 1 and await _feedback(tg) == []


async def test_an_uploaded_sticker_is_sent_by_file_id_next_time(tg: Harness, tmp_path):
    await add_food_pack(tg.service, tmp_path / "food")
    await tg.send(tg.api.message(GROUP, ALICE, "birthday cake with candles!"))
    await _ask(tg)
    await _ask(tg)
    first, second = tg.api.sent(GROUP["id"], "sendSticker")
    assert "sticker" in first.uploads
    assert second.params["sticker"].startswith("UPLOADED-") and not second.uploads


async def test_sticker_without_packs_or_conversation_explains(tg: Harness, tmp_path):
    await _ask(tg, "/sticker")
    assert (
        tg.api.texts(GROUP["id"])[-1]
        == "This chat has no sticker packs yet. An admin can add one with /addpack."
    )
    await add_food_pack(tg.service, tmp_path / "food")
    await _ask(tg, "/sticker")
    assert "say something first" in tg.api.texts(GROUP["id"])[-1]
    assert "privacy mode" not in tg.api.texts(GROUP["id"])[-1]  # this bot can read the group


@pytest.mark.parametrize("api", [False], indirect=True)  # privacy mode on, and the bot is no admin
async def test_privacy_mode_hint_when_the_bot_cannot_read_the_group(tg: Harness, tmp_path):
    await add_food_pack(tg.service, tmp_path / "food")
    await _ask(tg, "/sticker")
    assert "privacy mode" in tg.api.texts(GROUP["id"])[-1]


async def test_cooldown_is_the_engines_and_k_is_clamped(tg: Harness, tmp_path):
    tg.service.settings.sticker_cooldown_s = 60
    await add_food_pack(tg.service, tmp_path / "food")
    await tg.send(tg.api.message(GROUP, ALICE, "pizza"))
    await _ask(tg, "/sticker 99")
    await _ask(tg, "/sticker")
    assert "again in" in tg.api.texts(GROUP["id"])[-1]
    assert len(tg.pending().items) == 4  # max_k clamps 99; four distinct pictures in the pack


async def test_sticker_in_a_private_chat_points_to_groups_and_inline_mode(tg: Harness):
    await tg.send(tg.api.message(private(ALICE), ALICE, "/sticker"))
    assert "works in groups" in tg.api.texts(ALICE["id"])[-1]
    assert "@stickerpick_test_bot" in tg.api.texts(ALICE["id"])[-1]


async def test_a_sticker_from_a_telegram_set_is_sent_by_its_file_id(tg: Harness):
    from tests.auxil.media import webp_bytes

    tg.api.add_sticker_set(
        "Food_by_x", "Food", [("🍕", "static", webp_bytes()), ("🎂", "static", webp_bytes(w=32))]
    )
    await tg.send(tg.api.message(GROUP, ALICE, "/addpack Food_by_x"))
    await tg.send(tg.api.message(GROUP, BOB, "pizza"))
    await _ask(tg, "/sticker 2")
    call = tg.api.sent(GROUP["id"], "sendSticker")[-1]
    assert call.params["sticker"].startswith("CAAC-Food_by_x-") and not call.uploads
    assert (await tg.service.list_packs(GROUP_REF))[0].name == "Food_by_x"
