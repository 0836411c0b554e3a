"""`/addpack NAME` in Telegram also takes a pack of the library (e.g. the default `noto-emoji`, hyphen and
all), so a default pack an admin removed can come back; `/forget` counts in the singular too."""

from __future__ import annotations

from tests.auxil.telegram import ALICE, BOB, GROUP
from tests.bot.telegram.conftest import GROUP_REF, Harness, buttons
from tests.engine.test_service import make_pack


async def test_addpack_takes_a_library_pack_by_name(tg: Harness, tmp_path) -> None:
    await tg.service.import_pack(make_pack(tmp_path / "food"), name="noto-emoji")
    await tg.send(tg.api.message(GROUP, BOB, "/addpack noto-emoji"))  # not an admin
    assert await tg.service.list_packs(GROUP_REF) == []
    await tg.send(tg.api.message(GROUP, ALICE, "/addpack noto-emoji"))
    assert (
        tg.api.texts(GROUP["id"])[-1]
        == "Done: this chat uses the pack <b>noto-emoji</b> now. /packs lists them."
    )
    assert [p.name for p in await tg.service.list_packs(GROUP_REF)] == ["noto-emoji"]
    await tg.send(tg.api.message(GROUP, ALICE, "/removepack noto-emoji"))
    assert await tg.service.list_packs(GROUP_REF) == []
    await tg.send(tg.api.message(GROUP, ALICE, "/addpack noto-emoji"))  # and back again
    assert [p.name for p in await tg.service.list_packs(GROUP_REF)] == ["noto-emoji"]
    await tg.send(tg.api.message(GROUP, ALICE, "/addpack no-such-pack"))
    assert "nor one of my packs" in tg.api.texts(GROUP["id"])[-1]


async def test_forget_says_one_message(tg: Harness) -> None:
    await tg.send(tg.api.message(GROUP, ALICE, "just one"))
    await tg.send(tg.api.message(GROUP, ALICE, "/forget"))
    confirm = tg.api.last_message(GROUP["id"])
    await tg.send(tg.api.callback(ALICE, confirm, buttons(confirm)[0][1]))
    assert tg.api.texts(GROUP["id"])[-1].startswith("Done: I deleted 1 message of yours")
