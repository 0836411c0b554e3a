"""The public interfaces of the service's parts that callers outside the engine use (benchmarks, the export)."""

from __future__ import annotations

from pathlib import Path

from engine.service import ChatRef, UserRef
from tests.engine.test_service import make_pack


async def test_unshared_matrices_are_one_per_chat_and_counted(service, tmp_path):
    """``matrices.shared = False`` (the memory benchmark's naive baseline): each chat builds its own."""
    await service.import_pack(make_pack(tmp_path / "food"), name="food")
    chats = [ChatRef("test", f"g{i}") for i in range(6)]
    for c in chats:
        await service.enable_pack(c, "food")
        await service.record(c, UserRef("test", "1"), "sushi or pizza")
    for c in chats[:3]:
        assert (await service.suggest(c)).items
    one = service.matrices.nbytes
    assert len(service.matrices) == 1 and one > 0
    service.matrices.shared = False
    for c in chats[3:]:
        assert (await service.suggest(c)).items
    assert len(service.matrices) == 4 and service.matrices.nbytes == 4 * one


async def test_the_export_reads_through_public_calls(service, tmp_path):
    await service.add_pack(ChatRef("test", "g"), make_pack(tmp_path / "food"))
    rows = await service.sticker_rows([1, 2, 10**6])
    assert set(rows) == {1, 2} and all(len(sha) == 64 for _, _, sha in rows.values())
    if service.db_engine.dialect.name == "sqlite":
        assert service.database_file == Path(service.db_engine.url.database)
    else:
        assert service.database_file is None


async def test_the_served_model_directory_comes_from_open_service(service):
    assert service.model_dir == service.settings.serving_model_dir()


async def test_the_vectors_held_in_memory_stay_within_their_budget(service, tmp_path):
    """A library bigger than the embedding cache's budget: chats still get every sticker ranked (their
    vectors come back from the database), and memory holds at most the budget."""
    chat = ChatRef("test", "g")
    await service.add_pack(chat, make_pack(tmp_path / "food"))
    await service.record(chat, UserRef("test", "1"), "sushi or pizza")
    unbounded = [s.sticker_id for s in (await service.suggest(chat, 3)).items]
    held = service.embeddings.vectors(service.ranker.version)
    assert len(held) >= 3
    one = next(iter(held.values())).nbytes + 160
    service.embeddings.budget = 2 * one
    service.embeddings.clear()
    service.matrices.clear()
    assert await service.embeddings.reembed_all(service.ranker) >= 3  # every vector read back through memory
    held = service.embeddings.vectors(service.ranker.version)
    assert len(held) == 2 and service.embeddings.nbytes <= 2 * one
    bounded = [s.sticker_id for s in (await service.suggest(chat, 3)).items]
    assert bounded == unbounded
