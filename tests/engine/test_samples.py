"""Issue 7: logged retraining samples — capture where logging is on, privacy, the usage prior, model swap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from engine.db import TrainingSample
from engine.service import ChatRef
from tests.engine.test_service import ALICE, BOB, CHAT, make_pack

OTHER = ChatRef("test", "group-2", "Quiet group")


async def _samples(service) -> list[TrainingSample]:
    async with service.sessions() as session:
        return list((await session.execute(select(TrainingSample).order_by(TrainingSample.id))).scalars())


async def test_sent_sticker_is_logged_only_where_logging_is_on(service, tmp_path):
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.enable_pack(OTHER, "food")
    await service.record(CHAT, ALICE, "said before the opt-in: never kept")
    await service.set_logging(CHAT, True)
    for chat in (CHAT, OTHER):
        await service.record(chat, ALICE, "what should we eat tonight")
        await service.record(chat, BOB, "pizza!")
    assert await service.record_sticker(CHAT, ALICE, "pizza", message_id="9") is not None
    assert await service.record_sticker(OTHER, ALICE, "pizza") is None  # logging off there
    assert await service.record_sticker(CHAT, ALICE, "not-in-the-packs") is None
    rows = await _samples(service)
    assert len(rows) == 1 and rows[0].kind == "sent" and rows[0].platform_message_id == "9"
    assert [t["text"] for t in rows[0].context] == ["what should we eat tonight", "pizza!"]
    # history retention never deletes samples; the dialogue history stays text only
    await service.clear_history(CHAT)
    assert len(await _samples(service)) == 1
    assert await service.recent(CHAT) == []


async def test_pick_after_sticker_is_logged_with_what_was_shown(service, tmp_path):
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.set_logging(CHAT, True)
    await service.record(CHAT, ALICE, "birthday cake with candles!")
    result = await service.suggest(CHAT, k=3, user=BOB)
    chosen = result.items[1].sticker_id
    await service.feedback(result.suggestion_id, chosen, CHAT, BOB, kind="picked")
    (row,) = await _samples(service)
    assert row.kind == "picked" and row.sticker_id == chosen
    assert row.shown == [i.sticker_id for i in result.items]
    assert row.context[-1]["text"] == "birthday cake with candles!"


async def test_forget_and_logging_off_delete_samples(service, tmp_path):
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.enable_pack(OTHER, "food")
    for chat in (CHAT, OTHER):
        await service.set_logging(chat, True)
        await service.record(chat, ALICE, "alice says pizza")
        await service.record(chat, BOB, "bob says sushi")
        await service.record_sticker(chat, BOB, "sushi")
        await service.record_sticker(chat, ALICE, "pizza")
    assert len(await _samples(service)) == 4
    await service.forget(ALICE)
    rows = await _samples(service)
    assert len(rows) == 2 and all(r.user_id is not None for r in rows)  # bob's two remain
    assert all("alice" not in t["text"] for r in rows for t in r.context)  # her turns are gone from his
    await service.set_logging(OTHER, False)
    assert len(await _samples(service)) == 1
    exported = await service.logged_samples()
    assert [s.chat_key for s in exported] == ["test:group-1"]


async def test_logged_samples_since_and_time_order(service, tmp_path):
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.set_logging(CHAT, True)
    await service.record(CHAT, ALICE, "tacos")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i, sid in enumerate(["taco", "cake", "pizza"]):
        await service.record_sticker(CHAT, ALICE, sid, at=t0 + timedelta(days=2 - i))
    got = await service.logged_samples()
    assert [s.emoji for s in got] == ["🍕", "🎂", "🌮"]  # oldest first
    assert len(await service.logged_samples(since=t0 + timedelta(days=1))) == 2
    assert got[0].user_key == "test:1" and len(got[0].chat_sticker_ids) == 5


async def test_usage_prior_reranks_towards_what_the_chat_sends(service, tmp_path):
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.set_logging(CHAT, True)
    await service.record(CHAT, ALICE, "birthday cake with candles!")
    before = await service.suggest(CHAT, k=1)
    assert before.items[0].platform_sticker_id == "cake"
    for _ in range(3):
        await service.record_sticker(CHAT, BOB, "taco")
    service.settings.usage_prior_weight = 0.0
    assert (await service.suggest(CHAT, k=1)).items[0].platform_sticker_id == "cake"
    service.settings.usage_prior_weight = 10.0
    assert (await service.suggest(CHAT, k=1)).items[0].platform_sticker_id == "taco"
    service.settings.usage_prior_weight = 0.0


async def test_check_model_swaps_to_the_promoted_model(service, tmp_path):
    from tests.auxil.models import tiny_text_model_dir

    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.record(CHAT, ALICE, "pizza with cheese")
    old = service.ranker.version
    assert await service.check_model() is False
    service.settings.model_dir = tiny_text_model_dir(tmp_path / "v2", version="tiny-bow-2", seed=1)
    assert await service.check_model() is True
    assert service.ranker.version == "tiny-bow-2" != old
    result = await service.suggest(CHAT, k=2)  # re-embedded lazily with the new model
    assert result.items and result.items[0].platform_sticker_id in ("pizza", "same-picture")
