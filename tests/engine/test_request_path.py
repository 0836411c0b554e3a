"""The /sticker request path: one statement reads the chat and its history, one transaction claims the
cooldown and writes the suggestion (on a SQLite file both in the model's own worker thread, one hop for the
whole request; elsewhere group-committed), and what it returns can be read back at once by any worker."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import event, select

from engine.db import Chat, OneShot, create_engine
from engine.service import ChatRef, UserRef, open_service
from tests.engine.test_service import ALICE, BOB, CHAT, make_pack


def _count_statements(service) -> list[str]:
    """Every statement the request path's synchronous engine runs, from now on (SQLite files only)."""
    sync = service._suggester.db._sync
    if sync is None:
        pytest.skip("the request path runs through run_sync on this database")
    seen: list[str] = []
    event.listen(sync, "before_cursor_execute", lambda *a: seen.append(a[2].split()[0].upper()))
    return seen


async def test_the_chat_and_its_history_are_one_statement_and_the_write_one_transaction(service, tmp_path):
    service.settings.sticker_cooldown_s = 0.001  # every request claims its slot, as in production
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    for i in range(5):
        await service.record(CHAT, ALICE if i % 2 else BOB, f"pizza with cheese {i}")
    await service.suggest(CHAT)  # first sight of the chat's matrix
    await asyncio.sleep(0.01)
    seen = _count_statements(service)
    result = await service.suggest(CHAT, user=ALICE)
    assert result.items and result.items[0].platform_sticker_id in ("pizza", "same-picture")
    # the read (chat row, cooldown, history), then the write: the stickers' details, the claim, the
    # suggestion and its items
    assert seen == ["SELECT", "SELECT", "UPDATE", "INSERT", "INSERT"]
    assert [t.text for t in result.context] == [f"pizza with cheese {i}" for i in range(5)]


async def test_on_a_sqlite_file_the_suggestion_is_written_from_the_models_thread(service, tmp_path):
    """No hop of its own for the write: the thread that ran the model writes the suggestion."""
    service.settings.sticker_cooldown_s = 0.001
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.record(CHAT, ALICE, "pizza with cheese")
    await service.suggest(CHAT)
    await asyncio.sleep(0.01)
    sg = service._suggester
    if sg.db._sync is None:
        pytest.skip("elsewhere the write is group-committed: a hop of its own")
    writes: list[int] = []
    models: list[int] = []
    event.listen(
        sg.db._sync,
        "before_cursor_execute",
        lambda *a: a[2].split()[0].upper() in ("UPDATE", "INSERT") and writes.append(threading.get_ident()),
    )
    score = sg._score
    sg._score = lambda *a: models.append(threading.get_ident()) or score(*a)
    try:
        assert (await service.suggest(CHAT)).items
    finally:
        del sg._score
    assert len(models) == 1 and len(writes) == 3  # the claim, the suggestion, its items
    assert set(writes) == set(models) and models[0] != threading.get_ident()


async def test_on_a_sqlite_file_a_chat_whose_matrix_is_held_is_served_in_one_hop(
    service, tmp_path, monkeypatch
):
    """The chat read, the model and the write in one worker-thread call; the switch off gives two."""
    service.settings.sticker_cooldown_s = 0.001
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.record(CHAT, ALICE, "pizza with cheese")
    assert (await service.suggest(CHAT, user=ALICE)).items  # builds the chat's matrix (the event loop's path)
    await asyncio.sleep(0.01)
    sg = service._suggester
    if sg.db._sync is None:
        pytest.skip("elsewhere the read and the write are hops of their own")
    hops: list[str] = []
    to_thread = asyncio.to_thread

    async def counted(fn, /, *args, **kwargs):
        hops.append(getattr(fn, "__name__", type(fn).__name__))
        return await to_thread(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    one = await service.suggest(CHAT, user=ALICE)
    assert one.items and hops == ["_serve_here"]
    assert [t.text for t in one.context] == ["pizza with cheese"]
    hops.clear()
    sg.read_in_model_thread = False
    await asyncio.sleep(0.01)
    two = await service.suggest(CHAT, user=ALICE)
    assert len(hops) == 2 and "_serve_here" not in hops  # the read, then the model with the write
    assert [i.sticker_id for i in two.items] == [i.sticker_id for i in one.items]
    assert two.suggestion_id != one.suggestion_id


async def test_a_one_hop_request_refused_by_the_cooldown_writes_nothing(service, tmp_path):
    service.settings.sticker_cooldown_s = 60
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.record(CHAT, ALICE, "pizza with cheese")
    first = await service.suggest(CHAT)
    assert first.items
    seen = _count_statements(service)
    again = await service.suggest(CHAT)
    assert again.reason == "cooldown" and 59 < (again.retry_after_s or 0) <= 60
    assert "INSERT" not in seen and "UPDATE" not in seen


async def test_a_suggestion_is_readable_by_another_worker_as_soon_as_it_is_returned(migrated, tmp_path):
    one, two = await open_service(migrated), await open_service(migrated)
    try:
        chats = [ChatRef("test", f"c{i}") for i in range(6)]
        await one.import_pack(make_pack(tmp_path / "food"))
        for c in chats:
            await one.enable_pack(c, "food")
            await one.record(c, ALICE, "sushi with rice and fish")
        results = await asyncio.gather(*(one.suggest(c, 3, user=BOB) for c in chats))
        for c, r in zip(chats, results, strict=True):
            stored = await two.stored_suggestion(r.suggestion_id, c)
            assert stored is not None and [i.sticker_id for i in stored.items] == [
                i.sticker_id for i in r.items
            ]
            assert stored.requester == BOB
        assert len({r.suggestion_id for r in results}) == len(chats)
    finally:
        await one.close()
        await two.close()


async def test_of_two_workers_asking_for_one_chat_at_once_exactly_one_answers(migrated, tmp_path):
    migrated.sticker_cooldown_s = 60
    workers = [await open_service(migrated) for _ in range(2)]
    try:
        await workers[0].add_pack(CHAT, make_pack(tmp_path / "food"))
        await workers[0].record(CHAT, ALICE, "birthday cake")
        for _ in range(3):  # a few tries: the two requests must meet in the database, not one after the other
            answers = await asyncio.gather(
                *(w.suggest(CHAT) for w in workers), *(w.suggest(CHAT) for w in workers)
            )
            assert sum(bool(a.items) for a in answers) <= 1
            assert all(a.items or a.reason == "cooldown" for a in answers)
            async with workers[0].sessions.begin() as session:  # the next try starts with a free slot
                chat = (
                    await session.execute(select(Chat).where(Chat.platform_chat_id == CHAT.chat_id))
                ).scalar_one()
                chat.last_sticker_at = None
            for w in workers:
                w._suggester._claims.clear()
    finally:
        for w in workers:
            await w.close()


async def test_a_renamed_chat_is_renamed_and_answered(service, tmp_path):
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.record(CHAT, ALICE, "taco tuesday")
    renamed = ChatRef(CHAT.platform, CHAT.chat_id, "New name")
    assert (await service.suggest(renamed)).items
    async with service.sessions() as session:
        title = (
            await session.execute(select(Chat.title).where(Chat.platform_chat_id == CHAT.chat_id))
        ).scalar_one()
    assert title == "New name"


async def test_a_chat_seen_first_by_sticker_is_created_with_nothing_to_suggest(service):
    result = await service.suggest(ChatRef("test", "brand-new"), user=UserRef("test", "9", "zed"))
    assert result.reason == "no_packs"
    async with service.sessions() as session:
        assert (
            await session.execute(select(Chat.id).where(Chat.platform_chat_id == "brand-new"))
        ).scalar_one()


async def test_token_counts_are_kept_without_the_text(service, tmp_path):
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.record(CHAT, ALICE, "a very private sentence about sushi")
    assert (await service.suggest(CHAT)).items
    held = [
        (chat_id, version, key)
        for chat_id, (version, counts) in service._suggester._tokens.items()
        for key in counts
    ]
    assert held and not any(isinstance(part, str) and "private" in part for row in held for part in row)


async def test_the_naive_path_answers_the_same(service, tmp_path):
    """The benchmark's baseline (every statement through aiosqlite, one transaction per suggestion) is the
    path every database but a SQLite file takes: it must give the same answer."""
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.record(CHAT, ALICE, "cake with candles for the birthday")
    fast = await service.suggest(CHAT, 4)
    naive = OneShot(service.db_engine, threaded=False)
    assert not naive.threaded
    service._suggester.db = service._suggestions.db = naive
    slow = await service.suggest(CHAT, 4)
    assert [i.sticker_id for i in slow.items] == [i.sticker_id for i in fast.items]
    assert slow.suggestion_id != fast.suggestion_id
    assert await service.stored_suggestion(slow.suggestion_id, CHAT) is not None


def test_an_in_memory_database_is_never_opened_twice():
    """A second engine on ``:memory:`` would be another, empty database."""
    engine = create_engine("sqlite+aiosqlite://")
    assert not OneShot(engine).threaded
    with pytest.raises(RuntimeError, match="SQLite file"):  # so nothing can write from a thread there
        OneShot(engine).write_here(lambda conn: None)
