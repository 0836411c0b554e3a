"""The /sticker request path: one statement reads the chat and its history, one group-committed transaction
claims the cooldown and writes the suggestion, and what it returns can be read back at once by any worker."""

from __future__ import annotations

import asyncio

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
