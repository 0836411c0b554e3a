from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from engine.db import Feedback, Message, StickerEmbedding, Suggestion, SuggestionItem, User
from engine.ranking import top_k
from engine.service import ChatRef, UserRef
from tests.auxil.media import png_bytes

CHAT = ChatRef("test", "group-1", "Group")
ALICE = UserRef("test", "1", "alice")
BOB = UserRef("test", "2", "bob")

# Tags are what the (bag-of-words) test model reads: a sticker whose tags share words with the dialogue wins.
PACK = {
    "name": "food",
    "title": "Food stickers",
    "stickers": [
        {"file": "pizza.png", "id": "pizza", "emoji": "🍕", "tags": ["pizza", "cheese", "slice"]},
        {"file": "sushi.png", "id": "sushi", "emoji": "🍣", "tags": ["sushi", "fish", "rice"]},
        {"file": "cake.png", "id": "cake", "emoji": "🎂", "tags": ["birthday", "cake", "candles"]},
        {"file": "taco.png", "id": "taco", "emoji": "🌮", "tags": ["taco", "tortilla", "salsa"]},
        {"file": "same.png", "id": "same-picture", "emoji": "🍕", "tags": ["pizza", "cheese", "slice"]},
    ],
}


def make_pack(root: Path, spec: dict = PACK) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    colours = [(200, 30, 30, 255), (30, 200, 30, 255), (30, 30, 200, 255), (200, 200, 30, 255)]
    for i, s in enumerate(spec["stickers"]):
        colour = colours[0] if s["id"] == "same-picture" else colours[i % len(colours)]
        (root / s["file"]).write_bytes(png_bytes(48, 48, colour))
    (root / "pack.json").write_text(json.dumps(spec))
    return root


async def test_suggest_ranks_the_fitting_sticker_first_and_records_it(service, tmp_path):
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.record(CHAT, ALICE, "what should we eat tonight")
    await service.record(CHAT, BOB, "birthday cake with candles!")
    result = await service.suggest(CHAT, k=3, user=BOB)
    assert result.reason is None
    assert result.items[0].platform_sticker_id == "cake"
    assert [i.rank for i in result.items] == [0, 1, 2]
    assert all(a.score >= b.score for a, b in zip(result.items, result.items[1:], strict=False))
    async with service.sessions() as session:
        sug = await session.get(Suggestion, result.suggestion_id)
        items = list((await session.execute(select(SuggestionItem).order_by(SuggestionItem.rank))).scalars())
    assert sug is not None and sug.model_version == service.ranker.version
    assert [i.sticker_id for i in items] == [i.sticker_id for i in result.items]


async def test_never_the_same_sticker_twice(service, tmp_path):
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.record(CHAT, ALICE, "pizza with extra cheese, one slice please")
    result = await service.suggest(CHAT, k=10)
    ids = [i.sticker_id for i in result.items]
    assert len(ids) == len(set(ids))
    # "same-picture" is byte-identical to "pizza": one picture is one suggestion.
    assert len(result.items) == 4
    assert result.items[0].emoji == "🍕"


async def test_no_packs_gives_a_clear_message(service):
    await service.record(CHAT, ALICE, "hello")
    result = await service.suggest(CHAT)
    assert result.items == [] and result.reason == "no_packs"


async def test_no_conversation_gives_a_clear_message(service, tmp_path):
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    result = await service.suggest(CHAT)
    assert result.items == [] and result.reason == "no_conversation"


async def test_cooldown_per_chat(service, tmp_path):
    service.settings.sticker_cooldown_s = 60
    other = ChatRef("test", "group-2")
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.enable_pack(other, "food")
    for chat in (CHAT, other):
        await service.record(chat, ALICE, "taco tuesday")
    assert (await service.suggest(CHAT)).items
    second = await service.suggest(CHAT)
    assert not second.items and second.reason == "cooldown"
    assert (await service.suggest(other)).items  # another chat is not slowed down


async def test_embeddings_are_computed_once_per_model_version(service, tmp_path):
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    async with service.sessions() as session:
        n = (await session.execute(select(func.count()).select_from(StickerEmbedding))).scalar_one()
        versions = set((await session.execute(select(StickerEmbedding.model_version))).scalars())
    assert n == 5 and versions == {service.ranker.version}
    calls = []
    original = service.ranker.embed_stickers
    service.ranker.embed_stickers = lambda xs: calls.append(len(xs)) or original(xs)  # type: ignore[method-assign]
    service.embeddings.clear()  # a restarted worker: vectors come back from the database, not the model
    await service.record(CHAT, ALICE, "sushi")
    assert (await service.suggest(CHAT)).items
    assert calls == []


async def test_a_new_model_version_reembeds(service, tmp_path):
    from engine.ranking import TextBaselineRanker
    from tests.auxil.models import tiny_text_model_dir

    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.record(CHAT, ALICE, "taco with salsa")
    first = await service.suggest(CHAT)
    new = TextBaselineRanker(tiny_text_model_dir(tmp_path / "v2", version="tiny-bow-2", seed=1))
    await service.swap_ranker(new)
    second = await service.suggest(CHAT)
    assert second.items and first.items
    async with service.sessions() as session:
        versions = set((await session.execute(select(StickerEmbedding.model_version))).scalars())
        sug = await session.get(Suggestion, second.suggestion_id)
    assert versions == {"tiny-bow-1", "tiny-bow-2"} and sug.model_version == "tiny-bow-2"


async def test_packs_enable_list_remove(service, tmp_path):
    await service.import_pack(make_pack(tmp_path / "food"))
    assert [p.name for p in await service.list_packs()] == ["food"]
    assert await service.list_packs(CHAT) == []
    await service.enable_pack(CHAT, "food", by=ALICE)
    (info,) = await service.list_packs(CHAT)
    assert info.stickers == 5 and info.enabled
    await service.remove_pack(CHAT, "food")
    assert await service.list_packs(CHAT) == []
    assert await service.delete_pack("food") == 5
    assert await service.list_packs() == []


async def test_feedback_and_forget(service, tmp_path):
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.record(CHAT, ALICE, "pizza time")
    await service.record(CHAT, BOB, "sushi for me")
    await service.record(ChatRef("test", "other"), ALICE, "hello elsewhere")
    result = await service.suggest(CHAT, user=ALICE)
    await service.feedback(result.suggestion_id, result.items[1].sticker_id, CHAT, ALICE)
    assert await service.forget(ALICE) == 2
    async with service.sessions() as session:
        texts = list((await session.execute(select(Message.text))).scalars())
        users = list((await session.execute(select(User.display_name))).scalars())
        fb = (await session.execute(select(func.count()).select_from(Feedback))).scalar_one()
        sug = (await session.execute(select(func.count()).select_from(Suggestion))).scalar_one()
    assert texts == ["sushi for me"] and users == ["bob"] and fb == 0 and sug == 0
    assert await service.forget(ALICE) == 0


async def test_logging_is_off_until_turned_on(service):
    assert not await service.logging_enabled(CHAT)
    await service.set_logging(CHAT, True)
    assert await service.logging_enabled(CHAT)


def test_top_k_is_sorted_and_bounded():
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3], dtype=np.float32)
    assert top_k(scores, 3).tolist() == [1, 3, 2]
    assert top_k(scores, 10).tolist() == [1, 3, 2, 4, 0]
    assert top_k(scores, 0).tolist() == []


def test_the_engine_keeps_numpy_blas_single_threaded_unless_told_otherwise():
    import subprocess
    import sys

    code = "import os; os.environ.pop('OPENBLAS_NUM_THREADS', None); import engine; print(os.environ['OPENBLAS_NUM_THREADS'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    code = "import os; os.environ['OPENBLAS_NUM_THREADS'] = '2'; import engine; print(os.environ['OPENBLAS_NUM_THREADS'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2"
