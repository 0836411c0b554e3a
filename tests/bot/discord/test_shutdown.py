"""SIGTERM (systemd, docker stop) closes the Discord bot and the engine service like Ctrl-C does."""

from __future__ import annotations

import asyncio
import os
import signal

from pydantic import SecretStr

from bot.discord._bot import StickerBot, serve
from engine.service import StickerService
from engine.settings import Settings

TOKEN = (
    "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd"  # the shape, not a real one
)


async def test_sigterm_closes_the_bot_and_the_service(migrated: Settings, monkeypatch) -> None:
    migrated.discord_token = SecretStr(TOKEN)
    connected = asyncio.Event()
    closed: list[str] = []

    async def stay_connected(self: StickerBot, token: str, *, reconnect: bool = True) -> None:
        # Discord's gateway at the HTTP boundary: "connected" until the client is closed
        connected.set()
        while not self.is_closed():
            await asyncio.sleep(0.01)
        closed.append("bot")

    original_close = StickerService.close

    async def close_and_note(self: StickerService) -> None:
        await original_close(self)
        closed.append("service")

    monkeypatch.setattr(StickerBot, "start", stay_connected)
    monkeypatch.setattr(StickerService, "close", close_and_note)
    task = asyncio.create_task(serve(migrated))
    await asyncio.wait_for(connected.wait(), timeout=10)
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # serve handles it (else this kills pytest)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, timeout=10)  # returns: no SystemExit, no traceback
    assert closed == ["bot", "service"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # and leaves the process as it found it
