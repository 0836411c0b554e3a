"""An offline Telegram Bot API for tests, at the HTTP boundary, the way python-telegram-bot's own suite works.

:class:`FakeBotApi` is an in-memory Bot API server: it answers the methods the adapter calls (messages, edits,
stickers, sticker sets, files, admins, inline answers, getUpdates), records every call, serves file downloads,
and can be told to fail (a download, a flood wait). :class:`FakeRequest` is the ``telegram.request.BaseRequest``
that routes the real ``Application``'s requests to it. The update builders make the JSON Telegram would send.

:class:`EmulatorRequest` is the product's compatibility layer plus a scripted getChatAdministrators, for the
in-process emulator test (npm ``telegram-test-api``), see there.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from telegram.request import BaseRequest, RequestData

from bot.telegram._compat import CompatRequest

TOKEN = "123456789:AAHfake-SECRET_token_for_tests_0123456789"
BOT_ID = 123456789
BOT_USERNAME = "stickerpick_test_bot"
API_URL = "https://api.telegram.org/bot"
FILE_URL = "https://api.telegram.org/file/bot"

ALICE = {"id": 1001, "is_bot": False, "first_name": "Alice", "username": "alice"}
BOB = {"id": 1002, "is_bot": False, "first_name": "Bob", "username": "bob"}
CAROL = {"id": 1003, "is_bot": False, "first_name": "Carol"}
GROUP = {"id": -1001000000001, "type": "supergroup", "title": "Friends"}
OTHER_GROUP = {"id": -1001000000002, "type": "supergroup", "title": "Book club"}


def private(user: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": user["id"], "type": "private", "first_name": user["first_name"]}


class ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    uploads: dict[str, bytes] = field(default_factory=dict)
    origin: str = ""  # FakeBotApiServer: the URL prefix of the client (which worker called)


@dataclass
class Scripted:
    """A canned answer for the next call of a method: an HTTP error, or an exception in the transport."""

    code: int = 200
    description: str = ""
    parameters: dict[str, Any] | None = None
    raise_: Exception | None = None


class FakeBotApi:
    def __init__(self, token: str = TOKEN, can_read_all_group_messages: bool = True) -> None:
        self.token = token
        self.me = {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "stickerpick",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": can_read_all_group_messages,
            "supports_inline_queries": True,
        }
        self.calls: list[ApiCall] = []
        self.chats: dict[int, dict[str, Any]] = {}
        self.admins: dict[int, list[dict[str, Any]]] = {}
        self.sticker_sets: dict[str, dict[str, Any]] = {}
        self.files: dict[str, bytes] = {}  # file_id → bytes
        self.failing_downloads: set[str] = set()  # file_ids whose download breaks mid-transfer
        self.downloads: list[str] = []  # file_ids downloaded, in order
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}  # what the bot sent, by (chat, id)
        self.deleted: list[tuple[int, int]] = []
        self.script: dict[str, list[Scripted]] = defaultdict(list)
        # setMyCommands: (scope type, language_code or None) → [(command, description)]
        self.command_menus: dict[tuple[str, str | None], list[tuple[str, str]]] = {}
        self.updates: asyncio.Queue[dict[str, Any]] | None = None
        self._ids = itertools.count(5000)
        self._update_ids = itertools.count(1)
        self._uploads = itertools.count(1)

    # ------------------------------------------------------------------ set-up
    def add_chat(
        self, chat: Mapping[str, Any], admins: list[Mapping[str, Any]] = (), sticker_set: str | None = None
    ):
        self.chats[chat["id"]] = {**chat, "sticker_set_name": sticker_set}
        self.admins[chat["id"]] = [dict(a) for a in admins]

    def add_sticker_set(
        self, name: str, title: str, stickers: list[tuple[str, str, bytes]], sticker_type: str = "regular"
    ) -> dict[str, Any]:
        """``stickers``: (emoji, kind static|animated|video, file bytes). Returns the set as Telegram sends it."""
        items = []
        for i, (emoji, kind, data) in enumerate(stickers):
            file_id = f"CAAC-{name}-{i}"
            self.files[file_id] = data
            items.append(
                {
                    "file_id": file_id,
                    "file_unique_id": f"AgAD{name}{i}",
                    "width": 512,
                    "height": 512,
                    "is_animated": kind == "animated",
                    "is_video": kind == "video",
                    "type": sticker_type,
                    "emoji": emoji,
                    "set_name": name,
                    "file_size": len(data),
                }
            )
        sticker_set = {"name": name, "title": title, "sticker_type": sticker_type, "stickers": items}
        self.sticker_sets[name] = sticker_set
        return sticker_set

    def fail_next(self, method: str, scripted: Scripted) -> None:
        self.script[method].append(scripted)

    # ------------------------------------------------------------------ what happened
    def called(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    def sent(self, chat_id: int | None = None, method: str | None = None) -> list[ApiCall]:
        """sendMessage/sendSticker calls (to one chat)."""
        methods = {method} if method else {"sendMessage", "sendSticker"}
        return [
            c
            for c in self.calls
            if c.method in methods and (chat_id is None or int(c.params["chat_id"]) == chat_id)
        ]

    def texts(self, chat_id: int | None = None) -> list[str]:
        """Every text the bot sent or edited into (a chat), in order."""
        out = []
        for c in self.calls:
            if c.method in ("sendMessage", "editMessageText") and (
                chat_id is None or int(c.params.get("chat_id", 0)) == chat_id
            ):
                out.append(c.params["text"])
        return out

    def last_message(self, chat_id: int) -> dict[str, Any]:
        return [m for (c, _), m in self.messages.items() if c == chat_id][-1]

    # ------------------------------------------------------------------ HTTP
    async def handle(self, url: str, http_method: str, data: RequestData | None) -> tuple[int, bytes]:
        file_prefix, api_prefix = f"{FILE_URL}{self.token}/", f"{API_URL}{self.token}/"
        if unquote(url).startswith(file_prefix):  # PTB quotes file paths: the token's colon becomes %3A
            return self._download(url, unquote(url)[len(file_prefix) :])
        if not url.startswith(api_prefix):
            return 404, b'{"ok": false, "error_code": 404, "description": "Not Found"}'
        method = url[len(api_prefix) :]
        params = dict(data.parameters) if data is not None else {}
        uploads = {}
        if data is not None and data.contains_files:
            for part, value in data.multipart_data.items():
                content = value[1]
                uploads[part] = content if isinstance(content, bytes) else content.read()
        return await self.call(method, params, uploads)

    async def call(
        self, method: str, params: dict[str, Any], uploads: dict[str, bytes], origin: str = ""
    ) -> tuple[int, bytes]:
        """One Bot API method with decoded parameters (what :meth:`handle` does after parsing a URL); for
        :class:`FakeBotApiServer`, whose clients are other processes."""
        self.calls.append(ApiCall(method, params, uploads, origin))
        if self.script.get(method):
            scripted = self.script[method].pop(0)
            if scripted.raise_ is not None:
                raise scripted.raise_
            return self._error(ApiError(scripted.code, scripted.description, scripted.parameters))
        handler = getattr(self, f"api_{method}", None)
        if handler is None:
            return self._error(ApiError(404, "Not Found: method not found"))
        try:
            result = handler(params, uploads)
            if asyncio.iscoroutine(result):
                result = await result
        except ApiError as exc:
            return self._error(exc)
        return 200, json.dumps({"ok": True, "result": result}).encode()

    @staticmethod
    def _error(exc: ApiError) -> tuple[int, bytes]:
        body: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
        if exc.parameters:
            body["parameters"] = exc.parameters
        return exc.code, json.dumps(body).encode()

    def _download(self, url: str, path: str) -> tuple[int, bytes]:
        file_id = path.rsplit("/", 1)[-1].split(".", 1)[0]
        self.downloads.append(file_id)
        if file_id in self.failing_downloads:
            # What a broken connection looks like from inside the HTTP layer: the message quotes the URL.
            raise ConnectionResetError(f"connection reset by peer while reading {url}")
        if file_id not in self.files:
            return 404, b'{"ok": false, "error_code": 404, "description": "Not Found"}'
        return 200, self.files[file_id]

    # ------------------------------------------------------------------ Bot API methods
    def _message(self, chat_id: int, **fields: Any) -> dict[str, Any]:
        chat = self.chats.get(chat_id) or {"id": chat_id, "type": "private", "first_name": "someone"}
        chat = {k: v for k, v in chat.items() if k != "sticker_set_name"}
        message = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": chat,
            "from": {k: self.me[k] for k in ("id", "is_bot", "first_name", "username")},
            **{k: v for k, v in fields.items() if v is not None},
        }
        self.messages[(chat_id, message["message_id"])] = message
        return message

    @staticmethod
    def _reply_fields(params: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "reply_markup" in params:
            out["reply_markup"] = params["reply_markup"]
        if "message_thread_id" in params:
            out["message_thread_id"] = params["message_thread_id"]
            out["is_topic_message"] = True
        reply = params.get("reply_parameters")
        if reply:
            out["reply_to_message"] = {
                "message_id": reply["message_id"],
                "date": int(time.time()),
                "chat": {"id": int(params["chat_id"]), "type": "supergroup", "title": "?"},
            }
        return out

    def api_getMe(self, params: dict, uploads: dict) -> dict[str, Any]:
        return self.me

    def api_setMyCommands(self, params: dict, uploads: dict) -> bool:
        scope = params.get("scope") or {"type": "default"}
        self.command_menus[(scope["type"], params.get("language_code"))] = [
            (c["command"], c["description"]) for c in params["commands"]
        ]
        return True

    def api_deleteWebhook(self, params: dict, uploads: dict) -> bool:
        return True

    def api_setWebhook(self, params: dict, uploads: dict) -> bool:
        return True

    def api_getWebhookInfo(self, params: dict, uploads: dict) -> dict[str, Any]:
        last = self.called("setWebhook")
        url = last[-1].params.get("url", "") if last else ""
        return {"url": url, "has_custom_certificate": False, "pending_update_count": 0}

    def api_sendMessage(self, params: dict, uploads: dict) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        return self._message(chat_id, text=params["text"], **self._reply_fields(params))

    def api_sendSticker(self, params: dict, uploads: dict) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        if "sticker" in uploads:
            n = next(self._uploads)
            sticker = {
                "file_id": f"UPLOADED-{n}",
                "file_unique_id": f"up{n}",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "type": "regular",
            }
            self.files[sticker["file_id"]] = uploads["sticker"]
        else:
            sticker = self._sticker_by_file_id(str(params.get("sticker")))
            if sticker is None:
                raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        return self._message(chat_id, sticker=sticker, **self._reply_fields(params))

    def _sticker_by_file_id(self, file_id: str) -> dict[str, Any] | None:
        for s in self.sticker_sets.values():
            for sticker in s["stickers"]:
                if sticker["file_id"] == file_id:
                    return sticker
        if file_id.startswith("UPLOADED-") and file_id in self.files:
            return {
                "file_id": file_id,
                "file_unique_id": "up" + file_id.split("-")[1],
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "type": "regular",
            }
        return None

    def _find(self, params: dict) -> dict[str, Any]:
        key = (int(params["chat_id"]), int(params["message_id"]))
        if key not in self.messages:
            raise ApiError(400, "Bad Request: message to edit not found")
        return self.messages[key]

    def api_editMessageText(self, params: dict, uploads: dict) -> dict[str, Any]:
        message = self._find(params)
        if message.get("text") == params["text"] and params.get("reply_markup") == message.get(
            "reply_markup"
        ):
            raise ApiError(400, "Bad Request: message is not modified")
        message["text"] = params["text"]
        message.pop("reply_markup", None)
        if "reply_markup" in params:
            message["reply_markup"] = params["reply_markup"]
        return message

    def api_editMessageReplyMarkup(self, params: dict, uploads: dict) -> dict[str, Any]:
        message = self._find(params)
        message.pop("reply_markup", None)
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message

    def api_deleteMessage(self, params: dict, uploads: dict) -> bool:
        key = (int(params["chat_id"]), int(params["message_id"]))
        if key not in self.messages:
            raise ApiError(400, "Bad Request: message to delete not found")
        del self.messages[key]
        self.deleted.append(key)
        return True

    def api_answerCallbackQuery(self, params: dict, uploads: dict) -> bool:
        return True

    def api_answerInlineQuery(self, params: dict, uploads: dict) -> bool:
        return True

    def api_getChat(self, params: dict, uploads: dict) -> dict[str, Any]:
        chat = self.chats.get(int(params["chat_id"]))
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        full = {k: v for k, v in chat.items() if v is not None}
        gifts = {
            "unlimited_gifts": False,
            "limited_gifts": False,
            "unique_gifts": False,
            "premium_subscription": False,
            "gifts_from_channels": False,
        }
        return {**full, "accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": gifts}

    def api_getChatAdministrators(self, params: dict, uploads: dict) -> list[dict[str, Any]]:
        chat_id = int(params["chat_id"])
        if chat_id not in self.chats:
            raise ApiError(400, "Bad Request: chat not found")
        rights = dict.fromkeys(
            (
                "can_be_edited",
                "can_manage_chat",
                "can_delete_messages",
                "can_manage_video_chats",
                "can_restrict_members",
                "can_promote_members",
                "can_change_info",
                "can_invite_users",
                "can_post_stories",
                "can_edit_stories",
                "can_delete_stories",
            ),
            False,
        )
        out = []
        for i, user in enumerate(self.admins.get(chat_id, [])):
            if i == 0:
                out.append({"status": "creator", "user": user, "is_anonymous": False})
            else:
                out.append({"status": "administrator", "user": user, "is_anonymous": False, **rights})
        return out

    def api_getStickerSet(self, params: dict, uploads: dict) -> dict[str, Any]:
        sticker_set = self.sticker_sets.get(str(params["name"]))
        if sticker_set is None:
            raise ApiError(400, "Bad Request: STICKERSET_INVALID")
        return sticker_set

    def api_getFile(self, params: dict, uploads: dict) -> dict[str, Any]:
        file_id = str(params["file_id"])
        if file_id not in self.files:
            raise ApiError(400, "Bad Request: invalid file_id")
        ext = "tgs" if self.files[file_id][:2] == b"\x1f\x8b" else "webp"
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(self.files[file_id]),
            "file_path": f"stickers/{file_id}.{ext}",
        }

    async def api_getUpdates(self, params: dict, uploads: dict) -> list[dict[str, Any]]:
        if self.updates is None:
            self.updates = asyncio.Queue()
        out = []
        try:
            out.append(await asyncio.wait_for(self.updates.get(), timeout=0.05))
            while not self.updates.empty():
                out.append(self.updates.get_nowait())
        except TimeoutError:
            pass
        return out

    # ------------------------------------------------------------------ updates
    def next_update_id(self) -> int:
        return next(self._update_ids)

    def message(
        self,
        chat: Mapping[str, Any],
        user: Mapping[str, Any] | None,
        text: str | None = None,
        *,
        reply_to: int | None = None,
        thread_id: int | None = None,
        edited: bool = False,
        message_id: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A user's message update (``edited`` → an edited_message update for ``message_id``)."""
        message: dict[str, Any] = {
            "message_id": message_id or next(self._ids),
            "date": int(time.time()),
            "chat": dict(chat),
            **extra,
        }
        if user is not None:
            message["from"] = dict(user)
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                command = text.split()[0]
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if reply_to is not None:
            message["reply_to_message"] = {
                "message_id": reply_to,
                "date": int(time.time()),
                "chat": dict(chat),
            }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        if edited:
            message["edit_date"] = int(time.time())
        return {"update_id": self.next_update_id(), ("edited_message" if edited else "message"): message}

    def callback(self, user: Mapping[str, Any], message: Mapping[str, Any], data: str) -> dict[str, Any]:
        """A button press on a message the bot sent."""
        return {
            "update_id": self.next_update_id(),
            "callback_query": {
                "id": str(next(self._ids)),
                "from": dict(user),
                "chat_instance": "42",
                "message": dict(message),
                "data": data,
            },
        }

    def inline_query(self, user: Mapping[str, Any], query: str = "") -> dict[str, Any]:
        return {
            "update_id": self.next_update_id(),
            "inline_query": {"id": str(next(self._ids)), "from": dict(user), "query": query, "offset": ""},
        }

    def chosen_inline_result(
        self, user: Mapping[str, Any], result_id: str, query: str = ""
    ) -> dict[str, Any]:
        return {
            "update_id": self.next_update_id(),
            "chosen_inline_result": {"result_id": result_id, "from": dict(user), "query": query},
        }

    def my_chat_member(
        self, chat: Mapping[str, Any], by: Mapping[str, Any], old: str, new: str
    ) -> dict[str, Any]:
        bot = {k: self.me[k] for k in ("id", "is_bot", "first_name", "username")}

        def member(status: str) -> dict[str, Any]:
            if status == "administrator":
                rights = {
                    k: True
                    for k in (
                        "can_manage_chat",
                        "can_delete_messages",
                        "can_manage_video_chats",
                        "can_restrict_members",
                        "can_promote_members",
                        "can_change_info",
                        "can_invite_users",
                        "can_post_stories",
                        "can_edit_stories",
                        "can_delete_stories",
                    )
                }
                return {
                    "status": status,
                    "user": bot,
                    "can_be_edited": False,
                    "is_anonymous": False,
                    **rights,
                }
            if status == "kicked":
                return {"status": status, "user": bot, "until_date": 0}
            return {"status": status, "user": bot}

        return {
            "update_id": self.next_update_id(),
            "my_chat_member": {
                "chat": dict(chat),
                "from": dict(by),
                "date": int(time.time()),
                "old_chat_member": member(old),
                "new_chat_member": member(new),
            },
        }


class FakeBotApiServer:
    """A :class:`FakeBotApi` behind a real HTTP server on loopback, for bots running in other processes.

    Each client gets its own prefix: ``{url}/<origin>/bot`` is its Bot API base URL (a self-hosted Bot API
    server's form, ``STICKERPICK_TELEGRAM_BASE_URL``) and ``{url}/<origin>/file/bot`` its file URL, so every
    recorded :class:`ApiCall` says which client (``origin``) made it. Parameters arrive the way
    python-telegram-bot sends them: form fields, objects JSON-encoded, files as multipart parts.
    Use ``async with FakeBotApiServer(api) as server:`` inside a running event loop.
    """

    def __init__(self, api: FakeBotApi) -> None:
        self.api = api
        self.url = ""
        self._runner: Any = None

    def base_url(self, origin: str) -> str:
        return f"{self.url}/{origin}/bot"

    async def __aenter__(self) -> FakeBotApiServer:
        from aiohttp import web

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{origin}/{rest:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def _decode(value: str) -> Any:
        if value[:1] in ("{", "["):
            with contextlib.suppress(ValueError):
                return json.loads(value)
        return value

    async def _serve(self, request: Any) -> Any:
        from aiohttp import web

        origin, rest = request.match_info["origin"], request.match_info["rest"]
        token = self.api.token
        if unquote(rest).startswith(f"file/bot{token}/"):
            path = unquote(rest)[len(f"file/bot{token}/") :]
            try:
                code, body = self.api._download(str(request.url), path)
            except ConnectionResetError:
                return web.Response(status=500)
            return web.Response(status=code, body=body)
        if not rest.startswith(f"bot{token}/"):
            return web.Response(
                status=404, body=b'{"ok": false, "error_code": 404, "description": "Not Found"}'
            )
        method = rest[len(f"bot{token}/") :]
        params: dict[str, Any] = {}
        uploads: dict[str, bytes] = {}
        if request.content_type == "application/json":
            params = dict(await request.json())
        elif request.can_read_body:
            for key, value in (await request.post()).items():
                if isinstance(value, str):
                    params[key] = self._decode(value)
                else:  # an uploaded file
                    uploads[key] = value.file.read()
        code, body = await self.api.call(method, params, uploads, origin)
        return web.Response(status=code, body=body, content_type="application/json")


class FakeRequest(BaseRequest):
    """Routes python-telegram-bot's HTTP requests to a :class:`FakeBotApi`; nothing leaves the process."""

    def __init__(self, api: FakeBotApi) -> None:
        self.api = api

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        return await self.api.handle(url, method, request_data)


# ---------------------------------------------------------------------------------------------- emulator
class EmulatorRequest(CompatRequest):
    """The product's compatibility layer for Bot API servers that are not Telegram's
    (:class:`bot.telegram._compat.CompatRequest`, which repairs the emulator's answers), plus one test-only
    answer: the emulator has no getChatAdministrators, so that one method is answered here from ``admins``
    (chat id → user dicts), the group's admin list the test scripts — everything else goes to the emulator.
    The test of the real ``stickerpick telegram`` process runs without it.
    """

    def __init__(self, admins: Mapping[int, list[Mapping[str, Any]]] | None = None, **kwargs: Any) -> None:
        super().__init__("emulator", **kwargs)
        self.admins = dict(admins or {})

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
        if api_method == "getChatAdministrators" and request_data is not None:
            chat_id = int(request_data.parameters["chat_id"])
            members = [
                {"status": "creator", "user": dict(user), "is_anonymous": False}
                for user in self.admins.get(chat_id, [])
            ]
            return 200, json.dumps({"ok": True, "result": members}).encode()
        return await super().do_request(
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )
