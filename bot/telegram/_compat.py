"""Bot API servers other than Telegram's that answer outside the Bot API (e.g. the npm ``telegram-test-api``
emulator), made readable for python-telegram-bot — used only when ``STICKERPICK_TELEGRAM_BASE_URL`` points
somewhere other than ``api.telegram.org``.

Against Telegram itself the bot keeps PTB's own HTTP layer untouched. Elsewhere :class:`CompatRequest` (PTB's
``HTTPXRequest``) reads each answer through :func:`normalise`, which repairs only what breaks the Bot API's
own contract, so a compliant server (a self-hosted ``telegram-bot-api``) passes through unchanged:

- ``getMe`` without ``is_bot`` (PTB's ``User`` requires it): a getMe user is a bot by definition;
- ``date``/``edit_date`` in milliseconds (PTB's dates overflow): a Unix time in seconds passes 10**11 only in
  the year 5138;
- a ``callback_query`` without ``chat_instance`` (required): the chat's id, which it stands for;
- a sent message echoing ``reply_markup``/``entities``/``reply_parameters``/``link_preview_options`` as the
  JSON-encoded form fields it was sent with: decoded;
- ``"ok": true`` with ``"result": null`` (no Bot API method answers that; the emulator does for the methods
  that answer True, and for edits that answer the message or True): True;
- an error without ``description`` but with ``message`` (the emulator's unsupported methods, HTTP 500): the
  message becomes the description, so the logs say which method is missing.

And a server that answers ``getUpdates`` at once with nothing although it was asked to long-poll (the emulator
does not long-poll) would have PTB's polling loop spin: :class:`CompatRequest` waits ``IDLE_POLL_S`` before such
an answer. Each repair is logged once per process, at INFO, naming the server's host (never a URL: Bot API
paths carry the token).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any
from urllib.parse import urlparse

from telegram.request import BaseRequest, HTTPXRequest, RequestData

log = logging.getLogger(__name__)

TELEGRAM_HOST = "api.telegram.org"
MILLISECOND_DATES_AFTER = 10**11
DATE_FIELDS = ("date", "edit_date")
# Message fields that are objects; a server that echoes the sendMessage form back leaves them JSON-encoded.
ECHOED_JSON_FIELDS = ("reply_markup", "entities", "reply_parameters", "link_preview_options")
IDLE_POLL_S = 0.25


def needs_compat(base_url: str | None) -> bool:
    """True for a Bot API server other than Telegram's own (``None``: PTB's default, Telegram)."""
    if not base_url:
        return False
    return (urlparse(base_url).hostname or "").lower() != TELEGRAM_HOST


def normalise(method: str, code: int, body: Any) -> tuple[Any, list[str]]:
    """A Bot API answer (parsed JSON) repaired where it breaks the Bot API, and what was repaired."""
    fixes: list[str] = []
    if not isinstance(body, dict):
        return body, fixes
    if not (200 <= code <= 299):
        if "description" not in body and isinstance(body.get("message"), str):
            body = {"ok": False, "error_code": code, "description": body["message"]}
            fixes.append("error without description")
        return body, fixes
    if body.get("ok") is True and "result" in body and body["result"] is None:
        body = {**body, "result": True}
        fixes.append(f"{method} answered null")
    result = _walk(body.get("result"), fixes)
    if method == "getMe" and isinstance(result, dict) and "is_bot" not in result:
        result["is_bot"] = True
        fixes.append("getMe without is_bot")
    if method == "getUpdates" and isinstance(result, list):
        for update in result:
            query = update.get("callback_query") if isinstance(update, dict) else None
            if isinstance(query, dict) and "chat_instance" not in query:
                chat = (query.get("message") or {}).get("chat") or {}
                query["chat_instance"] = str(chat.get("id", query.get("id", "")))
                fixes.append("callback query without chat_instance")
    return {**body, "result": result}, fixes


def _walk(value: Any, fixes: list[str]) -> Any:
    if isinstance(value, list):
        return [_walk(v, fixes) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in ECHOED_JSON_FIELDS and isinstance(item, str) and item[:1] in ("{", "["):
            with contextlib.suppress(ValueError):
                item = json.loads(item)
                fixes.append(f"{key} echoed as JSON text")
        out[key] = _walk(item, fixes)
    for key in DATE_FIELDS:
        if isinstance(out.get(key), int) and out[key] > MILLISECOND_DATES_AFTER:
            out[key] //= 1000
            fixes.append("dates in milliseconds")
    return out


class CompatRequest(HTTPXRequest):
    """PTB's HTTP layer for a Bot API server that is not Telegram's: every answer through :func:`normalise`."""

    def __init__(self, host: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        self._logged: set[str] = set()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        api_method = url.rsplit("/", 1)[-1]
        started = time.monotonic()
        code, payload = await super().do_request(
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )
        try:
            body = json.loads(payload)
        except ValueError:  # an HTML error page, say: PTB reports it as it is
            return code, payload
        body, fixes = normalise(api_method, code, body)
        for fix in fixes:
            if fix not in self._logged:
                self._logged.add(fix)
                log.info("the Bot API server at %s is not Telegram's: repaired %s", self.host, fix)
        idle = isinstance(body, dict) and body.get("result") == []
        if api_method == "getUpdates" and idle and request_data is not None:
            asked = request_data.parameters.get("timeout") or 0
            if isinstance(asked, int | float) and asked > 0 and time.monotonic() - started < asked / 2:
                await asyncio.sleep(IDLE_POLL_S)  # it does not long-poll: do not spin
        if not fixes:
            return code, payload
        return code, json.dumps(body).encode()
