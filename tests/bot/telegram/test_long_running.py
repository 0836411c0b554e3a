"""Long-running habits of the Telegram bot: concurrent updates in per-chat order, start-up retries while the
network is down, the health endpoint beside polling."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import pytest
from telegram import Update
from telegram.error import TimedOut
from telegram.ext import Application, ApplicationHandlerStop, TypeHandler

from bot.telegram._app import CONCURRENT_UPDATES, serve_when_reachable
from bot.telegram._updates import PerChatUpdateProcessor
from engine.settings import Settings
from tests.auxil.telegram import (
    ALICE,
    BOB,
    GROUP,
    OTHER_GROUP,
    TOKEN,
    FakeBotApi,
    FakeRequest,
    Scripted,
    private,
)
from tests.bot.telegram.conftest import offline_application, telegram_settings


async def test_the_bot_handles_updates_concurrently(tg) -> None:
    assert isinstance(tg.app.update_processor, PerChatUpdateProcessor)
    assert tg.app.concurrent_updates == CONCURRENT_UPDATES > 1


async def test_chats_run_concurrently_and_each_chat_in_order() -> None:
    """PTB's real update loop with the processor: a slow update of one chat holds up only that chat."""
    api = FakeBotApi()
    app = (
        Application.builder()
        .token(TOKEN)
        .request(FakeRequest(api))
        .get_updates_request(FakeRequest(api))
        .concurrent_updates(PerChatUpdateProcessor(4))
        .build()
    )
    events: list[tuple[str, int, str]] = []
    delays = {"slow": 0.3, "fast": 0.0}

    async def record(update: Update, _context: Any) -> None:
        assert update.effective_chat is not None and update.effective_message is not None
        text, chat = update.effective_message.text or "", update.effective_chat.id
        events.append(("start", chat, text))
        await asyncio.sleep(delays[text.split()[0]])
        events.append(("end", chat, text))
        raise ApplicationHandlerStop

    app.add_handler(TypeHandler(Update, record))
    async with app:
        await app.start()
        updates = [
            api.message(GROUP, ALICE, "slow 1"),
            api.message(GROUP, BOB, "fast 2"),  # same chat: must wait for "slow 1"
            api.message(OTHER_GROUP, BOB, "fast 3"),  # another chat: must not wait
            api.message(GROUP, ALICE, "fast 4"),
        ]
        for u in updates:
            await app.update_queue.put(Update.de_json(u, app.bot))
        await asyncio.wait_for(app.update_queue.join(), timeout=5)
        await app.stop()
    assert isinstance(app.update_processor, PerChatUpdateProcessor)
    assert app.update_processor.waiting_chats == 0  # nothing kept per chat once done
    in_group = [(kind, text) for kind, chat, text in events if chat == GROUP["id"]]
    assert in_group == [
        ("start", "slow 1"),
        ("end", "slow 1"),
        ("start", "fast 2"),
        ("end", "fast 2"),
        ("start", "fast 4"),
        ("end", "fast 4"),
    ]
    assert events.index(("end", OTHER_GROUP["id"], "fast 3")) < events.index(("end", GROUP["id"], "slow 1"))


class StopOnFirstPoll(FakeBotApi):
    """The Bot API fake, telling the test when polling began (start-up is over) and what the health endpoint
    answered meanwhile; then it stops the application."""

    def __init__(self) -> None:
        super().__init__()
        self.app: Application | None = None
        self.polled_at: float | None = None
        self.health: dict[str, tuple[int, str]] = {}
        self.metrics_port: int | None = None

    async def api_getUpdates(self, params: dict, uploads: dict) -> list[dict[str, Any]]:
        if self.polled_at is None:
            self.polled_at = time.monotonic()
            asyncio.get_running_loop().create_task(self._finish())
        return []

    async def _finish(self) -> None:
        assert self.app is not None
        while not self.app.running:
            await asyncio.sleep(0.01)
        if self.metrics_port is not None:
            async with aiohttp.ClientSession() as http:
                for path in ("/healthz", "/metrics"):
                    async with http.get(f"http://127.0.0.1:{self.metrics_port}{path}") as r:
                        self.health[path] = (r.status, await r.text())
        self.app.stop_running()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_start_is_retried_while_telegram_cannot_be_reached(migrated: Settings, caplog) -> None:
    from engine.service import open_service

    settings = telegram_settings(migrated)
    settings.metrics_port = _free_port()
    api = StopOnFirstPoll()
    api.metrics_port = settings.metrics_port
    api.fail_next("getMe", Scripted(raise_=TimedOut("connect timed out")))  # the network is down …
    api.fail_next("getMe", Scripted(raise_=OSError("Network is unreachable")))  # … still down …
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        service = loop.run_until_complete(open_service(settings))
        try:
            app = offline_application(settings, service, api)
            api.app = app
            with caplog.at_level(logging.WARNING):
                serve_when_reachable(app, settings)  # returns when the fake stops it, after polling began
        finally:
            loop.run_until_complete(service.close())
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    assert len(api.called("getMe")) == 3 and api.polled_at is not None  # … then up: the bot started
    retries = [r.getMessage() for r in caplog.records if "Telegram cannot be reached" in r.getMessage()]
    assert len(retries) == 2 and "retrying in 1.0 s" in retries[1], retries
    assert TOKEN not in caplog.text
    assert api.health["/healthz"] == (200, "ok\n")
    status, body = api.health["/metrics"]
    assert status == 200 and "stickerpick_model_info{" in body


def test_a_refused_token_is_not_retried(migrated: Settings) -> None:
    from telegram.error import InvalidToken

    from engine.service import open_service

    settings = telegram_settings(migrated)
    api = StopOnFirstPoll()
    api.fail_next("getMe", Scripted(code=401, description="Unauthorized"))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        service = loop.run_until_complete(open_service(settings))
        try:
            app = offline_application(settings, service, api)
            api.app = app
            with pytest.raises(InvalidToken):
                serve_when_reachable(app, settings)
        finally:
            loop.run_until_complete(service.close())
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    assert len(api.called("getMe")) == 1 and api.polled_at is None


def test_private_chat_helper_is_unchanged() -> None:  # the fake's private chats key by user, like groups
    from bot.telegram._updates import order_key

    update = Update.de_json(FakeBotApi().message(private(ALICE), ALICE, "hi"), None)
    assert order_key(update) == ("chat", ALICE["id"])
    assert order_key(object()) is None


async def test_an_update_cancelled_while_waiting_for_its_chat_is_dropped_cleanly() -> None:
    api = FakeBotApi()
    processor = PerChatUpdateProcessor(2)
    first, second = (Update.de_json(api.message(GROUP, ALICE, t), None) for t in ("one", "two"))
    ran: list[str] = []
    release = asyncio.Event()

    async def work(name: str) -> None:
        ran.append(name)
        await release.wait()

    holding = asyncio.create_task(processor.process_update(first, work("one")))
    waiting = asyncio.create_task(processor.process_update(second, work("two")))
    await asyncio.sleep(0.05)
    assert ran == ["one"] and processor.waiting_chats == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    await holding
    assert ran == ["one"] and processor.waiting_chats == 0  # "two" never ran, and nothing is left behind
