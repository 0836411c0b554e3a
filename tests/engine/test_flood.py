"""Issue 8, load: a flood of messages and /sticker from many chats at once, for a bounded time. Nothing
crashes, every chat's cooldown holds, and what the service keeps per chat stays within its bounds."""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

import pytest

import engine
from engine.service import ChatRef, UserRef, open_service
from tests.engine.test_service import make_pack

ENGINE_FILES = str(Path(engine.__file__).parent / "*")
COOLDOWN_S = 4.0
# A chat may be answered at most 3 times, 4 s apart. The cooldown must be longer than one round of the 200 chats
# takes: with a 2 s cooldown, a round on 2 busy cores (2.6-2.9 s) outlasted it, so a chat coming back was rarely
# refused (measured: 72 refusals of 769 requests).
FLOOD_S = 10.0
FLOOD_CHATS = 200
MORE_CHATS = 1_000


@pytest.mark.slow
async def test_a_flood_from_many_chats(migrated, tmp_path):
    """200 chats send messages and /sticker (4 s cooldown) as fast as they can for 10 s, concurrently; then
    200 and 1,000 more chats each say something and ask once, 100 at a time. Public API only: what the service keeps per chat is
    measured as the memory still held by allocations made under the engine's code."""
    migrated.sticker_cooldown_s = COOLDOWN_S
    migrated.identity_cache = 150  # per-process state bounded well below the number of chats
    migrated.default_packs = ["food"]
    service = await open_service(migrated)
    try:
        await service.import_pack(make_pack(tmp_path / "food"), name="food")
        service.default_packs = ["food"]
        answered: dict[str, list[tuple[float, float]]] = defaultdict(list)  # (asked, answered) times
        cooled: dict[str, int] = defaultdict(int)
        errors: list[BaseException] = []

        async def chat(i: int, until: float | None = None, rounds: int = 3) -> None:
            ref = ChatRef("flood", f"chat{i}", f"Chat {i}")
            n = 0
            while (time.monotonic() < until) if until is not None else (n < rounds):
                user = UserRef("flood", f"u{n % 4}-{i}")
                try:
                    await service.record(ref, user, f"pizza party {n} in {i}")
                    asked = time.monotonic()
                    result = await service.suggest(ref, user=user)
                except Exception as exc:  # collected and reported below
                    errors.append(exc)
                    return
                if result.items:
                    answered[ref.chat_id].append((asked, time.monotonic()))
                else:
                    assert result.reason == "cooldown", result.reason
                    cooled[ref.chat_id] += 1
                n += 1
                await asyncio.sleep(0)

        def engine_bytes() -> int:  # memory allocated under the engine's code since tracing began, still held
            gc.collect()
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(True, ENGINE_FILES, all_frames=True)]
            )
            return sum(stat.size for stat in snapshot.statistics("filename"))

        await service.record(ChatRef("flood", "warm-up"), None, "pizza")  # the model's first run, outside
        await service.suggest(ChatRef("flood", "warm-up"))
        start = time.monotonic()
        until = start + FLOOD_S
        await asyncio.gather(*(chat(i, until) for i in range(FLOOD_CHATS)))
        flood_s = time.monotonic() - start
        flood_answers, flood_cooled = sum(len(t) for t in answered.values()), sum(cooled.values())

        async def newcomers(first: int, count: int, wave: int = 100) -> None:  # ``wave`` chats at a time
            for at in range(first, first + count, wave):
                await asyncio.gather(*(chat(i, rounds=1) for i in range(at, min(at + wave, first + count))))

        tracemalloc.start()
        try:
            await newcomers(FLOOD_CHATS, FLOOD_CHATS)
            after_200 = engine_bytes()
            await newcomers(2 * FLOOD_CHATS, MORE_CHATS)
            after_more = engine_bytes()
        finally:
            tracemalloc.stop()

        assert not errors, errors[:3]
        assert flood_s < FLOOD_S + 4.0  # requests kept finishing: no chat was stuck behind the flood
        # the flood really ran: every chat answered, and several requests per chat (most met the cooldown)
        assert len(answered) == FLOOD_CHATS + FLOOD_CHATS + MORE_CHATS
        assert flood_answers >= FLOOD_CHATS and flood_cooled >= FLOOD_CHATS, (flood_answers, flood_cooled)
        assert flood_answers + flood_cooled >= 3 * FLOOD_CHATS
        for chat_id, times in answered.items():  # the cooldown held in every chat
            # the service stamps an answer somewhere between its request's start and end: from the start of
            # one answered request to the end of the next, at least the cooldown passed
            gaps = [b_end - a_start for (a_start, _), (_, b_end) in itertools.pairwise(times)]
            assert all(g >= COOLDOWN_S for g in gaps), (chat_id, gaps)
            assert len(times) <= 1 + int(FLOOD_S // COOLDOWN_S) or int(chat_id[4:]) >= FLOOD_CHATS
        # per-chat state is bounded: 1,000 more chats keep (almost) nothing more than the first 200 did (an
        # unbounded per-chat dict entry alone is ~100 bytes a chat)
        per_chat = (after_more - after_200) / MORE_CHATS
        assert per_chat < 60, (after_200, after_more, per_chat)
    finally:
        await service.close()
