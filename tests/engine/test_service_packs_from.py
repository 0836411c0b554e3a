"""``suggest(packs_from=...)``: a server's packs, each channel's own conversation and cooldown."""

from __future__ import annotations

from engine.service import ChatRef, UserRef
from tests.engine.test_service import make_pack

SERVER = ChatRef("test", "guild-1", "Server")
GENERAL = ChatRef("test", "channel-1", "#general")
THREAD = ChatRef("test", "channel-2", "#thread")
ALICE = UserRef("test", "1", "alice")


async def test_packs_of_the_server_history_of_the_channel(service, tmp_path):
    await service.import_pack(make_pack(tmp_path / "food"))
    await service.enable_pack(SERVER, "food")
    await service.record(GENERAL, ALICE, "sushi with fish and rice")
    await service.record(THREAD, ALICE, "birthday cake with candles")

    alone = await service.suggest(GENERAL)  # the channel itself has no packs
    assert alone.reason == "no_packs"
    general = await service.suggest(GENERAL, k=2, packs_from=SERVER)
    thread = await service.suggest(THREAD, k=2, packs_from=SERVER)
    assert general.items[0].platform_sticker_id == "sushi"
    assert thread.items[0].platform_sticker_id == "cake"
    assert [t.text for t in general.context] == ["sushi with fish and rice"]


async def test_cooldown_stays_per_channel(service, tmp_path):
    service.settings.sticker_cooldown_s = 60
    await service.import_pack(make_pack(tmp_path / "food"))
    await service.enable_pack(SERVER, "food")
    for chat in (GENERAL, THREAD):
        await service.record(chat, ALICE, "taco")
    assert (await service.suggest(GENERAL, packs_from=SERVER)).items
    assert (await service.suggest(GENERAL, packs_from=SERVER)).reason == "cooldown"
    assert (await service.suggest(THREAD, packs_from=SERVER)).items


async def test_a_new_server_starts_with_the_default_packs(service, tmp_path):
    await service.import_pack(make_pack(tmp_path / "food"))
    service.default_packs = ["food"]
    await service.record(GENERAL, ALICE, "pizza")
    assert (await service.suggest(GENERAL, packs_from=ChatRef("test", "guild-new"))).items
