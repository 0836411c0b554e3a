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
COOLDOWN_S = 1.0
FLOOD_S = 4.0


@pytest.mark.slow
async def test_a_flood_from_many_chats(migrated, tmp_path):
    migrated.sticker_cooldown_s = COOLDOWN_S
    migrated.identity_cache = 150  # per-process state bounded well below the number of chats
    migrated.default_packs = ["food"]
    service = await open_service(migrated)
    try:
        await service.import_pack(make_pack(tmp_path / "food"), name="food")
        service.default_packs = ["food"]
        answered: dict[str, list[float]] = defaultdict(list)
        errors: list[BaseException] = []

        async def chat(i: int, until: float) -> None:
            ref = ChatRef("flood", f"chat{i}", f"Chat {i}")
            n = 0
            while time.monotonic() < until:
                try:
                    await service.record(ref, UserRef("flood", f"u{n % 4}-{i}"), f"pizza party {n} in {i}")
                    result = await service.suggest(ref, user=UserRef("flood", f"u{n % 4}-{i}"))
                except Exception as exc:  # collected and reported below
                    errors.append(exc)
                    return
                if result.items:
                    answered[ref.chat_id].append(time.monotonic())
                else:
                    assert result.message and ("again in" in result.message), result.message
                n += 1
                await asyncio.sleep(0)

        async def flood(first: int, count: int) -> None:
            until = time.monotonic() + FLOOD_S
            await asyncio.gather(*(chat(i, until) for i in range(first, first + count)))

        def engine_bytes() -> int:  # memory allocated by the engine's own code and still held
            gc.collect()
            snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, ENGINE_FILES)])
            return sum(stat.size for stat in snapshot.statistics("filename"))

        tracemalloc.start()
        await flood(0, 300)
        after_first = engine_bytes()
        await flood(300, 600)  # twice as many new chats again
        after_second = engine_bytes()
        tracemalloc.stop()

        assert not errors, errors[:3]
        assert len(answered) > 100  # the flood really ran through many chats
        for times in answered.values():  # the cooldown held in every chat
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert all(g >= COOLDOWN_S * 0.99 for g in gaps), gaps
        # per-chat state is bounded: caches at their caps, one shared sticker matrix
        assert len(service._ids) <= 150 and len(service._claims) <= 150
        assert len(service._chat_matrix_keys) <= 150 and len(service._matrices) == 1
        assert len(service.writer._since_retention) <= 150
        # and the engine's memory does not grow with the number of chats seen (600 more: < 100 bytes each)
        assert after_second - after_first < 60_000, (after_first, after_second)
    finally:
        await service.close()
