"""Engine additions for the platform adapters (the Telegram adapter first needed them): chats of a user, retention for every chat,
inline-sized suggestions over stickers the platform can send by file id."""

from __future__ import annotations

from datetime import timedelta

from engine.db import utcnow
from engine.library import PlatformSticker
from engine.service import ChatRef, UserRef
from tests.auxil.media import png_bytes
from tests.engine.test_service import make_pack

ALICE = UserRef("tg", "1", "alice")
BOB = UserRef("tg", "2", "bob")
GROUP = ChatRef("tg", "-10", "Group")
OTHER = ChatRef("tg", "-20", "Other")


async def test_chats_of_a_user_most_recent_first(service):
    assert await service.chats_of(ALICE) == []
    await service.record(GROUP, ALICE, "hi")
    await service.record(OTHER, ALICE, "hello")
    await service.record(OTHER, BOB, "hey")
    await service.record(ChatRef("discord", "-20"), ALICE, "elsewhere")
    assert [c.chat_id for c in await service.chats_of(ALICE)] == ["-20", "-10"]
    await service.record(GROUP, ALICE, "again")
    chats = await service.chats_of(ALICE, limit=1)
    assert chats == [ChatRef("tg", "-10", "Group")]
    await service.forget(ALICE)
    assert await service.chats_of(ALICE) == []


async def test_apply_retention_reaches_quiet_chats(service):
    old = utcnow() - timedelta(days=service.settings.retention_days + 1)
    await service.record(GROUP, ALICE, "long ago", at=old)
    await service.record(GROUP, ALICE, "today")
    await service.record(ChatRef("discord", "x"), ALICE, "long ago too", at=old)
    assert await service.apply_retention("tg") == 1
    assert [t.text for t in await service.recent(GROUP)] == ["today"]
    assert await service.apply_retention() == 1  # every platform


async def test_sendable_only_ranks_stickers_with_a_file_id_and_cap_allows_more(service, tmp_path):
    await service.add_pack(GROUP, make_pack(tmp_path / "food"))  # local: no file ids
    await service.record(GROUP, ALICE, "pizza with extra cheese")
    nothing = await service.suggest(GROUP, 50, text="pizza", cooldown=False, sendable_only=True)
    assert nothing.items == [] and nothing.reason

    colours = [(i * 20, 0, 0, 255) for i in range(12)]
    stickers = [
        PlatformSticker(f"u{i}", f"file-{i}", "🍕", data=png_bytes(8, 8, colours[i])) for i in range(12)
    ]
    await service.import_platform_pack("tg", "Set_one", stickers)
    await service.enable_pack(GROUP, "Set_one")
    result = await service.suggest(GROUP, 50, cooldown=False, cap=50, sendable_only=True)
    assert len(result.items) == 12  # more than max_k (10): the cap allows up to 50
    assert all(i.platform_file_id for i in result.items)
    capped = await service.suggest(GROUP, 50, cooldown=False)
    assert len(capped.items) == service.settings.max_k
