"""The compatibility layer for Bot API servers that are not Telegram's (bot/telegram/_compat.py): it repairs
only what breaks the Bot API, leaves compliant answers byte for byte as they came, and is never used against
api.telegram.org."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace
from typing import Any

from telegram.request import HTTPXRequest

from bot.telegram import build_application
from bot.telegram._compat import CompatRequest, needs_compat, normalise
from engine.service import StickerService
from engine.settings import Settings
from tests.auxil.telegram import ALICE, GROUP, FakeBotApi
from tests.bot.telegram.conftest import telegram_settings


def test_only_servers_other_than_telegrams_get_it():
    assert not needs_compat(None) and not needs_compat("")
    assert not needs_compat("https://api.telegram.org/bot")
    assert not needs_compat("https://API.Telegram.org:443/bot")
    assert needs_compat("http://localhost:8081/bot")
    assert needs_compat("http://127.0.0.1:9000/bot")
    assert needs_compat("https://api.telegram.org.example.com/bot")


def test_compliant_answers_pass_unchanged():
    api = FakeBotApi()
    message = api.message(GROUP, ALICE, "/sticker")["message"]
    answers = [
        ("getMe", {"ok": True, "result": api.me}),
        (
            "getUpdates",
            {
                "ok": True,
                "result": [api.message(GROUP, ALICE, "hi"), api.callback(ALICE, message, "s:1:k:0")],
            },
        ),
        ("sendMessage", {"ok": True, "result": {**message, "reply_markup": {"inline_keyboard": []}}}),
        ("editMessageText", {"ok": True, "result": True}),
        ("getUpdates", {"ok": True, "result": []}),
    ]
    for method, body in answers:
        assert normalise(method, 200, copy.deepcopy(body)) == (body, []), method
    error = {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
    assert normalise("getChat", 400, copy.deepcopy(error)) == (error, [])


def test_the_emulators_answers_are_repaired():
    me, fixes = normalise(
        "getMe", 200, {"ok": True, "result": {"id": 666, "first_name": "T", "username": "TBot"}}
    )
    assert me["result"]["is_bot"] is True and fixes == ["getMe without is_bot"]

    sent = {
        "message_id": 7,
        "date": 1_764_650_000_123,
        "chat": {"id": -100, "type": "private", "first_name": "Bot"},
        "text": "hi",
        "reply_parameters": json.dumps({"message_id": 3}),
        "reply_markup": json.dumps({"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]}),
    }
    body, fixes = normalise("sendMessage", 200, {"ok": True, "result": sent})
    assert body["result"]["date"] == 1_764_650_000
    assert body["result"]["reply_parameters"] == {"message_id": 3}
    assert body["result"]["reply_markup"]["inline_keyboard"][0][0]["text"] == "a"
    assert "dates in milliseconds" in fixes

    press = {
        "update_id": 5,
        "callback_query": {
            "id": "1",
            "from": ALICE,
            "data": "x",
            "message": {"message_id": 7, "date": 1, "chat": GROUP},
        },
    }
    body, fixes = normalise("getUpdates", 200, {"ok": True, "result": [press]})
    assert body["result"][0]["callback_query"]["chat_instance"] == str(GROUP["id"])

    assert normalise("editMessageText", 200, {"ok": True, "result": None})[0]["result"] is True

    unsupported = {"message": "API method 'sendSticker' is not supported."}
    body, _ = normalise("sendSticker", 500, unsupported)
    assert body == {
        "ok": False,
        "error_code": 500,
        "description": "API method 'sendSticker' is not supported.",
    }


async def test_build_application_uses_it_only_away_from_telegram(settings: Settings, service: StickerService):
    settings = telegram_settings(settings)
    for base_url, compat in (
        (None, False),
        ("https://api.telegram.org/bot", False),
        ("http://127.0.0.1:8081/bot", True),
    ):
        settings.telegram_base_url = base_url
        app = build_application(settings, service)
        assert isinstance(app.bot.request, HTTPXRequest)
        assert isinstance(app.bot.request, CompatRequest) is compat, base_url


async def test_a_server_that_does_not_long_poll_is_not_polled_in_a_spin(monkeypatch):
    """An empty getUpdates answered at once although the bot asked to wait: wait a moment before the next."""
    import bot.telegram._compat as compat

    async def answer(self, url, method, request_data=None, *timeouts):
        return 200, b'{"ok": true, "result": []}'

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(HTTPXRequest, "do_request", answer)
    monkeypatch.setattr(compat.asyncio, "sleep", sleep)
    request = CompatRequest("emulator")

    def asking(**parameters: object) -> Any:  # what CompatRequest reads of PTB's RequestData
        return SimpleNamespace(parameters=parameters)

    url = "http://127.0.0.1:9/bot123:abc/getUpdates"
    assert await request.do_request(url, "POST", asking(timeout=10)) == (
        200,
        b'{"ok": true, "result": []}',
    )
    assert slept == [compat.IDLE_POLL_S]
    await request.do_request(url, "POST", asking(timeout=0))  # asked not to wait
    assert slept == [compat.IDLE_POLL_S]
