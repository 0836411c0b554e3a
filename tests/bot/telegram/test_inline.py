from __future__ import annotations

from sqlalchemy import select

from engine.db import Feedback
from tests.auxil.media import webp_bytes
from tests.auxil.telegram import ALICE, BOB, GROUP, private
from tests.bot.telegram.conftest import Harness, add_food_pack

STICKERS = [
    ("🍕", "static", webp_bytes(w=30)),
    ("🎂", "static", webp_bytes(w=31)),
    ("🌮", "static", webp_bytes(w=32)),
]


async def _with_telegram_set(tg: Harness) -> None:
    tg.api.add_sticker_set("Food_set", "Food", STICKERS)
    await tg.send(tg.api.message(GROUP, ALICE, "/addpack Food_set"))


def _results(tg: Harness) -> list[dict]:
    return tg.api.called("answerInlineQuery")[-1].params["results"]


async def test_inline_ranks_cached_stickers_for_the_users_recent_chat(tg: Harness, tmp_path):
    await _with_telegram_set(tg)
    await add_food_pack(tg.service, tmp_path / "food")  # local stickers: no file_id, so not listed inline
    await tg.send(tg.api.message(GROUP, BOB, "happy birthday! cake time"))
    await tg.send(tg.api.inline_query(BOB))
    answer = tg.api.called("answerInlineQuery")[-1].params
    results = answer["results"]
    assert answer["is_personal"] is True and "button" not in answer
    assert len(results) == 3 and all(r["type"] == "sticker" for r in results)
    assert {r["sticker_file_id"] for r in results} == {f"CAAC-Food_set-{i}" for i in range(3)}
    assert all(r["id"].count(":") == 1 for r in results)


async def test_inline_without_a_recent_chat_uses_the_query_or_explains(tg: Harness):
    await _with_telegram_set(tg)
    await tg.send(tg.api.inline_query(BOB))  # Bob never wrote anywhere
    answer = tg.api.called("answerInlineQuery")[-1].params
    assert answer["results"] == [] and answer["button"]["start_parameter"] == "inline-help"
    # a typed query ranks the packs of Bob's own private chat (added there by sending /addpack in private)
    await tg.send(tg.api.message(private(BOB), BOB, "/addpack Food_set"))
    await tg.send(tg.api.inline_query(BOB, "pizza"))
    assert len(_results(tg)) == 3


async def test_inline_window_is_configurable(tg: Harness):
    await _with_telegram_set(tg)
    await tg.send(tg.api.message(GROUP, BOB, "pizza please"))
    tg.deps.settings.telegram_inline_window_s = 0
    await tg.send(tg.api.inline_query(BOB))
    assert _results(tg) == []


async def test_a_chosen_inline_result_is_recorded_as_feedback(tg: Harness):
    await _with_telegram_set(tg)
    await tg.send(tg.api.message(GROUP, BOB, "pizza please"))
    await tg.send(tg.api.inline_query(BOB, "🍕"))
    chosen = _results(tg)[1]["id"]
    await tg.send(tg.api.chosen_inline_result(BOB, chosen, "🍕"))
    await tg.send(tg.api.chosen_inline_result(BOB, "not-ours"))  # ignored
    async with tg.service.sessions() as session:
        rows = (
            await session.execute(select(Feedback.suggestion_id, Feedback.sticker_id, Feedback.kind))
        ).all()
    suggestion_id, sticker_id = map(int, chosen.split(":"))
    assert [(int(a), int(b), c) for a, b, c in rows] == [(suggestion_id, sticker_id, "inline")]
