"""Issue 14: at DEBUG, the Telegram bot logs no message text — python-telegram-bot would log every update it
processes and every Bot API call's parameters and result (getUpdates: everyone's messages) — and no token."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.auxil.telegram import ALICE, BOB, GROUP, TOKEN
from tests.bot.telegram.conftest import GROUP_REF, Harness, add_food_pack


async def _poll_once(tg: Harness, *updates: dict) -> None:
    """What polling does: getUpdates (through python-telegram-bot's real request path), then the update queue."""
    if tg.api.updates is None:
        tg.api.updates = asyncio.Queue()
    for u in updates:
        tg.api.updates.put_nowait(u)
    for update in await tg.app.bot.get_updates(timeout=0):
        await tg.app.update_queue.put(update)
    for _ in range(200):
        await asyncio.sleep(0.01)
        if tg.app.update_queue.empty():
            break
    await tg.drain()


async def test_no_message_text_in_the_logs_at_debug(tg: Harness, tmp_path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    await add_food_pack(tg.service, tmp_path / "food")
    await _poll_once(tg, tg.api.message(GROUP, ALICE, "SECRET-TEXT birthday cake with candles!"))
    for _ in range(100):  # the update is handled in the application's own task
        if await tg.service.recent(GROUP_REF):
            break
        await asyncio.sleep(0.02)
    assert [t.text for t in await tg.service.recent(GROUP_REF)] == ["SECRET-TEXT birthday cake with candles!"]
    await tg.send(tg.api.message(GROUP, BOB, "/sticker"))
    assert tg.api.sent(GROUP["id"], "sendSticker")  # it answered…
    formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    logged = caplog.text + "\n".join(formatter.format(r) for r in caplog.records)
    assert "SECRET-TEXT" not in logged  # …and logged nobody's words
    assert TOKEN not in logged and TOKEN.partition(":")[2].lower() not in logged.lower()
