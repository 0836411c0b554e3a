"""Issue 8: group-committed ingestion, the database cooldown shared by workers, bounded per-chat state."""

from __future__ import annotations

import asyncio

from cachetools import LRUCache
from sqlalchemy import select

from engine.db import Message
from engine.service import ChatRef, UserRef, open_service
from tests.engine.test_service import make_pack


async def test_concurrent_messages_share_commits_and_each_gets_its_own_id(service):
    chats = [ChatRef("test", f"c{i}") for i in range(20)]
    users = [UserRef("test", f"u{i}", f"user {i}") for i in range(5)]
    texts = {(c, j): f"message {j} in {c.chat_id}" for c in chats for j in range(15)}
    for c in chats:  # first sight of every chat/user (their rows) before the burst
        for u in users:
            await service.record(c, u, "hi")
    before = service.writer.batches

    async def say(c: ChatRef, j: int) -> tuple[ChatRef, int, int | None]:
        return c, j, await service.record(c, users[j % len(users)], texts[(c, j)], message_id=str(j))

    results = await asyncio.gather(*(say(c, j) for (c, j) in texts))
    transactions = service.writer.batches - before
    assert transactions < len(texts) / 5  # many messages per commit
    ids = [mid for _, _, mid in results]
    assert None not in ids and len(set(ids)) == len(ids)
    async with service.sessions() as session:
        stored = dict((await session.execute(select(Message.id, Message.text))).all())
    for c, j, mid in results:  # every caller got the id of *its* message
        assert stored[mid] == texts[(c, j)]
    # and each chat's history is in the order its messages were said
    recent = await service.recent(chats[3])
    assert [t.text for t in recent][-3:] == [texts[(chats[3], j)] for j in (12, 13, 14)]


async def test_one_transaction_per_message_when_batching_is_off(migrated):
    migrated.ingest_batch = 1
    service = await open_service(migrated)
    try:
        chat = ChatRef("test", "c")
        await asyncio.gather(*(service.record(chat, None, f"m{i}") for i in range(10)))
        assert service.writer.batches == 10
    finally:
        await service.close()


async def test_a_stale_cached_user_is_looked_up_again(service, tmp_path):
    """Another worker's /forget deleted the user this process has cached: the message is still kept."""
    chat, alice = ChatRef("test", "c"), UserRef("test", "a", "alice")
    await service.record(chat, alice, "first")
    other = await open_service(service.settings)  # a second worker on the same database
    try:
        await other.forget(alice)
    finally:
        await other.close()
    mid = await service.record(chat, alice, "after forget")
    async with service.sessions() as session:
        msg = await session.get(Message, mid)
    assert msg is not None and msg.text == "after forget" and msg.user_id is not None


async def test_a_refused_row_fails_alone(service):
    """One row the database refuses (here a chat id that does not exist) fails its own caller only."""
    from datetime import UTC, datetime

    from engine.ingest import PendingMessage

    good = ChatRef("test", "good")
    gid = await service.identities.chat_id(good)
    now = datetime.now(UTC)
    rows = [PendingMessage(gid, None, f"ok {i}", None, None, now) for i in range(5)]
    bad = PendingMessage(10**9, None, "orphan", None, None, now)
    results = await asyncio.gather(
        *(service.writer.write(m) for m in [*rows[:2], bad, *rows[2:]]), return_exceptions=True
    )
    assert isinstance(results[2], Exception)
    assert all(isinstance(r, int) for i, r in enumerate(results) if i != 2)
    assert [t.text for t in await service.recent(good)] == [f"ok {i}" for i in range(5)]


async def test_the_cooldown_holds_across_workers(service, tmp_path):
    """Two processes sharing a database answer one chat's /sticker once per cooldown, not once each."""
    service.settings.sticker_cooldown_s = 60
    chat = ChatRef("test", "g")
    await service.add_pack(chat, make_pack(tmp_path / "food"))
    await service.record(chat, UserRef("test", "a"), "pizza tonight?")
    other = await open_service(service.settings)
    try:
        first, second = await service.suggest(chat), await other.suggest(chat)
        assert first.items and not second.items and second.reason == "cooldown"
        # at the same moment, from both: exactly one answers
        service.settings.sticker_cooldown_s = 0.5
        await asyncio.sleep(0.6)
        both = await asyncio.gather(service.suggest(chat), other.suggest(chat))
        assert sum(bool(r.items) for r in both) == 1
    finally:
        await other.close()


async def test_chats_with_the_same_packs_share_one_matrix(service, tmp_path):
    await service.import_pack(make_pack(tmp_path / "food"), name="food")
    chats = [ChatRef("test", f"g{i}") for i in range(30)]
    for c in chats:
        await service.enable_pack(c, "food")
        await service.record(c, None, "sushi or pizza")
        assert (await service.suggest(c, cooldown=False)).items
    assert len(service.matrices) == 1


async def test_the_matrix_cache_stays_within_its_budget(service, tmp_path):
    """Every chat with different stickers: the cache keeps what fits, answers stay right."""
    service.settings.matrix_cache_mb = 1e-6  # room for one matrix
    spec = {
        "name": "p",
        "stickers": [{"file": f"{i}.png", "id": str(i), "emoji": "🍕", "tags": ["pizza"]} for i in range(4)],
    }
    for i in range(6):
        await service.add_pack(ChatRef("test", f"g{i}"), make_pack(tmp_path / f"p{i}", spec), name=f"p{i}")
        await service.record(ChatRef("test", f"g{i}"), None, "pizza")
    for i in range(6):
        assert len((await service.suggest(ChatRef("test", f"g{i}"), cooldown=False)).items) >= 1
        assert len(service.matrices) == 1


def test_lru_forgets_the_least_recently_used():
    lru: LRUCache[str, int] = LRUCache(2)
    lru["a"], lru["b"] = 1, 2
    assert lru.get("a") == 1  # a is now the most recent
    lru["c"] = 3
    assert lru.get("b") is None and lru.get("a") == 1 and lru.get("c") == 3 and len(lru) == 2


async def test_a_first_time_requester_with_the_cooldown_on(service, tmp_path):
    """/sticker from a user the bot has never seen, with the cooldown on: the new user, the claim and the
    suggestion are all written, promptly."""
    service.settings.sticker_cooldown_s = 30
    chat = ChatRef("test", "g")
    await service.add_pack(chat, make_pack(tmp_path / "food"))
    await service.record(chat, UserRef("test", "a"), "pizza?")
    result = await asyncio.wait_for(service.suggest(chat, user=UserRef("test", "new", "Newcomer")), 5)
    assert result.items and result.suggestion_id is not None


async def test_a_refreshed_pack_reaches_chats_that_already_use_it(service, tmp_path):
    """Re-importing a pack with a new sticker: chats whose matrix is cached rank the new one too."""
    import json

    from tests.auxil.media import png_bytes
    from tests.engine.test_service import PACK

    chat = ChatRef("test", "g")
    folder = make_pack(tmp_path / "food")
    await service.add_pack(chat, folder, name="food")
    await service.record(chat, UserRef("test", "a"), "a donut please")
    before = await service.suggest(chat, k=10, cooldown=False)
    new = {"file": "donut.png", "id": "donut", "emoji": "🍩", "tags": ["donut", "sprinkles"]}
    (folder / "donut.png").write_bytes(png_bytes(48, 48, (10, 100, 250, 255)))
    (folder / "pack.json").write_text(json.dumps({**PACK, "stickers": [*PACK["stickers"], new]}))
    await service.import_pack(folder, name="food")
    after = await service.suggest(chat, k=10, cooldown=False)
    assert len(after.items) == len(before.items) + 1
    assert after.items[0].platform_sticker_id == "donut"
