"""An offline Discord for the adapter's tests: raw payloads in, recorded HTTP requests out.

The bot under test is the real one (``bot.discord.build_bot``), logged in against :class:`FakeDiscordAPI`,
which replaces the two ways discord.py talks to Discord: ``HTTPClient.request`` (REST: login, command sync,
guild stickers, channel messages), ``HTTPClient.get_from_cdn`` (sticker and attachment downloads) and
``AsyncWebhookAdapter.request`` (interaction responses and their edits). Gateway events are fed in as the
payloads Discord sends (``parse_guild_create``-style data, ``MESSAGE_CREATE``, ``INTERACTION_CREATE``) through
the client's own connection state, so the command tree, checks, cooldowns and views dispatch as in
production. Nothing here opens a socket.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import discord
from discord.http import Route
from discord.webhook.async_ import AsyncWebhookAdapter

APP_ID = 900_000_000_000_000_001
BOT_ID = 900_000_000_000_000_002
OWNER_ID = 900_000_000_000_000_003
CDN = "https://cdn.discordapp.com"
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024

# discord.py names the tasks it schedules for events, commands and view callbacks: settle() awaits these.
_DISPATCH_TASKS = ("discord.py: ", "CommandTree-invoker", "discord-ui-view-dispatch")

_ids = itertools.count(1)


def snowflake(later_s: float = 0.0) -> int:
    """A fresh id that is also a plausible timestamp (now, or ``later_s`` from now), as Discord's are."""
    return discord.utils.time_snowflake(datetime.now(UTC) + timedelta(seconds=later_s)) + next(_ids)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


# ---------------------------------------------------------------------------------------------- payloads
def user_payload(user_id: int, name: str, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "global_name": name.title(),
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
    }


def member_payload(user: dict[str, Any], permissions: discord.Permissions | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "user": user,
        "roles": [],
        "joined_at": now_iso(),
        "deaf": False,
        "mute": False,
        "flags": 0,
    }
    if permissions is not None:
        data["permissions"] = str(permissions.value)
    return data


def text_channel_payload(channel_id: int, guild_id: int, name: str) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
    }


def thread_payload(thread_id: int, guild_id: int, parent_id: int, name: str) -> dict[str, Any]:
    return {
        "id": str(thread_id),
        "type": 11,
        "guild_id": str(guild_id),
        "parent_id": str(parent_id),
        "owner_id": str(OWNER_ID),
        "name": name,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": now_iso(),
            "locked": False,
        },
    }


def sticker_payload(
    sticker_id: int,
    guild_id: int,
    name: str,
    format_type: discord.StickerFormatType,
    tags: str = "",
    description: str = "",
    available: bool = True,
) -> dict[str, Any]:
    return {
        "id": str(sticker_id),
        "name": name,
        "description": description,
        "tags": tags,
        "type": 2,
        "format_type": format_type.value,
        "available": available,
        "guild_id": str(guild_id),
    }


def sticker_url(sticker: dict[str, Any]) -> str:
    fmt = discord.StickerFormatType(sticker["format_type"])
    if fmt is discord.StickerFormatType.gif:
        return f"https://media.discordapp.net/stickers/{sticker['id']}.gif"
    return f"{CDN}/stickers/{sticker['id']}.{fmt.file_extension}"


def guild_payload(
    guild_id: int,
    name: str,
    channels: list[dict[str, Any]],
    threads: list[dict[str, Any]] = (),  # type: ignore[assignment]
    stickers: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    everyone = {
        "id": str(guild_id),
        "name": "@everyone",
        "permissions": str(discord.Permissions.general().value),
        "position": 0,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }
    return {
        "id": str(guild_id),
        "name": name,
        "icon": None,
        "owner_id": str(OWNER_ID),
        "roles": [everyone],
        "emojis": [],
        "stickers": list(stickers),
        "features": [],
        "channels": channels,
        "threads": list(threads),
        "members": [],
        "member_count": 3,
        "large": False,
        "unavailable": False,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "system_channel_flags": 0,
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }


def message_payload(
    channel_id: int,
    author: dict[str, Any],
    content: str = "",
    guild_id: int | None = None,
    message_id: int | None = None,
    flags: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(message_id or snowflake()),
        "channel_id": str(channel_id),
        "author": author,
        "content": content,
        "timestamp": now_iso(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
        "flags": flags,
        "components": [],
    }
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    data.update(extra)
    return data


def attachment_payload(filename: str, size: int, content_type: str | None = None) -> dict[str, Any]:
    attachment_id = snowflake()
    url = f"https://cdn.discordapp.com/attachments/1/{attachment_id}/{filename}"
    data: dict[str, Any] = {
        "id": str(attachment_id),
        "filename": filename,
        "size": size,
        "url": url,
        "proxy_url": url.replace("cdn.discordapp.com", "media.discordapp.net"),
    }
    if content_type:
        data["content_type"] = content_type
    return data


# ---------------------------------------------------------------------------------------------- the fake API
class FakeResponse:
    """What discord.HTTPException reads from an aiohttp response."""

    def __init__(self, status: int, reason: str = "") -> None:
        self.status = status
        self.reason = reason or {403: "Forbidden", 404: "Not Found", 500: "Internal Server Error"}.get(
            status, ""
        )


def http_error(status: int, code: int = 0, message: str = "") -> discord.HTTPException:
    body = {"code": code, "message": message or "error"}
    cls = {403: discord.Forbidden, 404: discord.NotFound}.get(status, discord.HTTPException)
    if status >= 500:
        cls = discord.DiscordServerError
    return cls(FakeResponse(status), body)


@dataclass
class Request:
    method: str
    path: str  # the route template, e.g. /channels/{channel_id}/messages
    url: str
    json: Any = None
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (filename, bytes)


@dataclass
class Posted:
    """A message the bot posted in a channel."""

    id: int
    channel_id: int
    content: str
    sticker_ids: list[int]
    files: list[tuple[str, bytes]]
    deleted: bool = False


@dataclass
class Answer:
    """The state of one interaction's answer as the user would see it."""

    type: int | None = (
        None  # the callback type: 4 message, 5 deferred (thinking), 6 deferred update, 8 choices
    )
    ephemeral: bool = False
    content: str | None = None
    components: list[dict[str, Any]] = field(default_factory=list)
    choices: list[dict[str, Any]] = field(default_factory=list)
    message_id: int = field(default_factory=snowflake)
    followups: list[dict[str, Any]] = field(default_factory=list)
    allowed_mentions: dict[str, Any] | None = None

    def select_options(self) -> list[dict[str, Any]]:
        return self.component(3)["options"]

    def component(self, type_: int) -> dict[str, Any]:
        return next(c for row in self.components for c in row.get("components", []) if c.get("type") == type_)


class FakeDiscordAPI:
    """Answers the routes the adapter uses and records every request; anything else is a 404 noted in
    :attr:`unexpected`, so a test sees a route it did not expect."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.unexpected: list[str] = []
        self.cdn: dict[str, bytes] = {}
        self.guild_stickers: dict[int, list[dict[str, Any]]] = {}
        self.posted: dict[int, Posted] = {}
        self.answers: dict[str, Answer] = {}  # by interaction token
        self.sources: dict[str, Answer] = {}  # a component interaction's token → the answer it was used on
        self.tokens: set[str] = set()  # of the interactions made for this fake's server
        self.synced: dict[str, list[dict[str, Any]]] = {}  # "global" or the guild id → commands
        self.failures: dict[tuple[str, str], discord.HTTPException] = {}
        self.bot_user = user_payload(BOT_ID, "stickerpick", bot=True)

    # ------------------------------------------------------------------ set-up
    def install(self, client: discord.Client, monkeypatch: Any) -> None:
        monkeypatch.setattr(client.http, "request", self.http_request)
        monkeypatch.setattr(client.http, "get_from_cdn", self.get_from_cdn)
        # Interaction responses go through one class-level adapter: route them to the fake whose server
        # made the interaction (a test may run two servers, each with its own fake).
        router = AsyncWebhookAdapter.request
        fakes: list[FakeDiscordAPI] | None = getattr(router, "fakes", None)
        if fakes is None:
            fakes = []

            async def request(
                adapter: AsyncWebhookAdapter, route: Route, session: Any = None, **kwargs: Any
            ) -> Any:
                token = route.webhook_token or ""
                fake = next((f for f in fakes if token in f.tokens), fakes[-1])
                return await fake.webhook_request(route, **kwargs)

            request.fakes = fakes  # type: ignore[attr-defined]
            monkeypatch.setattr(AsyncWebhookAdapter, "request", request)
        fakes.append(self)

    def fail(self, method: str, path: str, error: discord.HTTPException) -> None:
        """Answer ``method path`` (a route template) with ``error`` from now on."""
        self.failures[(method, path)] = error

    def _check_failure(self, route: Route) -> None:
        error = self.failures.get((route.method, route.path))
        if error is not None:
            raise error

    # ------------------------------------------------------------------ views of what happened
    def channel_messages(self, channel_id: int, include_deleted: bool = False) -> list[Posted]:
        return [
            p
            for p in self.posted.values()
            if p.channel_id == channel_id and (include_deleted or not p.deleted)
        ]

    def routes(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]

    # ------------------------------------------------------------------ REST
    async def http_request(self, route: Route, *, files: Any = None, form: Any = None, **kwargs: Any) -> Any:
        body = kwargs.get("json")
        received: list[tuple[str, bytes]] = []
        if form:
            for part in form:
                if part["name"] == "payload_json":
                    body = json.loads(part["value"])
        for f in files or []:
            f.reset()
            received.append((f.filename, f.fp.read()))
        self.requests.append(Request(route.method, route.path, route.url, body, received))
        self._check_failure(route)
        return self._answer_rest(route, body, received)

    def _answer_rest(self, route: Route, body: Any, files: list[tuple[str, bytes]]) -> Any:
        key = f"{route.method} {route.path}"
        parts = route.url.split("/")
        if key == "GET /users/@me":
            return self.bot_user
        if key == "GET /oauth2/applications/@me":
            return {
                "id": str(APP_ID),
                "name": "stickerpick",
                "icon": None,
                "description": "",
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": user_payload(OWNER_ID, "owner"),
                "verify_key": "0" * 64,
                "flags": 0,
            }
        if key in (
            "PUT /applications/{application_id}/commands",
            "PUT /applications/{application_id}/guilds/{guild_id}/commands",
        ):
            scope = "global" if "guilds" not in parts else parts[parts.index("guilds") + 1]
            commands = [
                {**c, "id": str(snowflake()), "application_id": str(APP_ID), "version": "1"} for c in body
            ]
            if scope != "global":
                commands = [{**c, "guild_id": scope} for c in commands]
            self.synced[scope] = commands
            return commands
        if key == "GET /guilds/{guild_id}/stickers":
            return self.guild_stickers.get(int(parts[parts.index("guilds") + 1]), [])
        if key == "POST /channels/{channel_id}/messages":
            channel_id = int(parts[parts.index("channels") + 1])
            return self._post_message(channel_id, body or {}, files)
        if key == "DELETE /channels/{channel_id}/messages/{message_id}":
            message_id = int(parts[-1])
            if message_id not in self.posted or self.posted[message_id].deleted:
                raise http_error(404, 10008, "Unknown Message")
            self.posted[message_id].deleted = True
            return None
        self.unexpected.append(key)
        raise http_error(404, 0, f"the fake does not answer {key}")

    def _post_message(self, channel_id: int, body: dict[str, Any], files: list[tuple[str, bytes]]) -> Any:
        message_id = snowflake()
        sticker_ids = [int(s) for s in body.get("sticker_ids", [])]
        self.posted[message_id] = Posted(
            message_id, channel_id, body.get("content") or "", sticker_ids, files
        )
        sticker_items = [
            {"id": str(s["id"]), "name": s["name"], "format_type": s["format_type"]}
            for stickers in self.guild_stickers.values()
            for s in stickers
            if int(s["id"]) in sticker_ids
        ]
        attachments = [
            {**attachment_payload(name, len(data)), "id": str(snowflake())} for name, data in files
        ]
        return message_payload(
            channel_id,
            self.bot_user,
            body.get("content") or "",
            message_id=message_id,
            sticker_items=sticker_items,
            attachments=attachments,
        )

    async def get_from_cdn(self, url: str) -> bytes:
        self.requests.append(Request("GET", "cdn", url))
        if url not in self.cdn:
            raise http_error(404, 0, "asset not found")
        return self.cdn[url]

    # ------------------------------------------------------------------ interaction responses (webhooks)
    async def webhook_request(
        self, route: Route, *, payload: Any = None, multipart: Any = None, files: Any = None, **_: Any
    ) -> Any:
        body = payload
        if multipart:
            for part in multipart:
                if part["name"] == "payload_json":
                    body = json.loads(part["value"])
        received = []
        for f in files or []:
            f.reset()
            received.append((f.filename, f.fp.read()))
        self.requests.append(Request(route.method, route.path, route.url, body, received))
        self._check_failure(route)
        token = route.webhook_token or ""
        own = self.answers.setdefault(token, Answer())
        key = f"{route.method} {route.path}"
        if key == "POST /interactions/{webhook_id}/{webhook_token}/callback":
            own.type = body["type"]
            answer = self._target(token)
            data = body.get("data") or {}
            flags = data.get("flags", 0)
            answer.ephemeral = answer.ephemeral or bool(flags & 64)
            if "content" in data:
                answer.content = data["content"]
            if "components" in data:
                answer.components = data["components"]
            if "choices" in data:
                answer.choices = data["choices"]
            if "allowed_mentions" in data:
                answer.allowed_mentions = data["allowed_mentions"]
            callback: dict[str, Any] = {
                "interaction": {
                    "id": str(route.webhook_id),
                    "type": 2,
                    "response_message_id": str(answer.message_id),
                    "response_message_loading": answer.type == 5,
                    "response_message_ephemeral": answer.ephemeral,
                }
            }
            if answer.type in (4, 7):
                callback["resource"] = {"type": answer.type, "message": self._answer_message(answer)}
            return callback
        answer = self._target(token)
        if key == "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original":
            if "content" in body:
                answer.content = body["content"]
            if "components" in body:
                answer.components = body["components"]
            return self._answer_message(answer)
        if key == "POST /webhooks/{webhook_id}/{webhook_token}":
            own.followups.append(body)  # a new message, whatever the interaction was used on
            return message_payload(1, self.bot_user, body.get("content") or "", flags=body.get("flags", 0))
        if key == "GET /webhooks/{webhook_id}/{webhook_token}/messages/@original":
            return self._answer_message(answer)
        self.unexpected.append(key)
        raise http_error(404, 0, f"the fake does not answer {key}")

    def _target(self, token: str) -> Answer:
        """The message an interaction's answer shows in: its own, or for a component interaction answered
        with a (deferred) update, the message whose component was used."""
        own = self.answers.setdefault(token, Answer())
        source = self.sources.get(token)
        return source if source is not None and own.type in (6, 7) else own

    def _answer_message(self, answer: Answer) -> dict[str, Any]:
        return message_payload(
            1,
            self.bot_user,
            answer.content or "",
            message_id=answer.message_id,
            flags=64 if answer.ephemeral else 0,
            components=answer.components,
        )


# ---------------------------------------------------------------------------------------------- a server
MEMBER = discord.Permissions.general() | discord.Permissions.text()
MEMBER.manage_expressions = False
MEMBER.manage_guild = False
MEMBER.administrator = False
BOT_PERMISSIONS = discord.Permissions.text()


@dataclass
class Person:
    id: int
    name: str
    permissions: discord.Permissions = field(default_factory=lambda: discord.Permissions(MEMBER.value))
    bot: bool = False
    locale: str = "en-US"  # their Discord client's language (the interactions' `locale`)

    @property
    def user(self) -> dict[str, Any]:
        return user_payload(self.id, self.name, bot=self.bot)


class OfflineServer:
    """One server with a text channel and a thread, members, and the bot logged in, all offline."""

    def __init__(self, bot: Any, api: FakeDiscordAPI, guild_id: int, channel_id: int, thread_id: int) -> None:
        self.bot = bot
        self.api = api
        self.guild_id = guild_id
        self.channel_id = channel_id
        self.thread_id = thread_id
        self.app_permissions = discord.Permissions(BOT_PERMISSIONS.value)
        self.command_ids: dict[str, int] = {}
        self.clock_s = 0.0  # how far interactions are "in the future": cooldowns read an interaction's id

    def advance(self, seconds: float) -> None:
        """Let time pass for the cooldowns (they measure the time between interactions by their ids)."""
        self.clock_s += seconds

    @property
    def guild(self) -> discord.Guild:
        guild = self.bot.get_guild(self.guild_id)
        assert guild is not None
        return guild

    # ------------------------------------------------------------------ gateway events
    async def say(
        self, who: Person, text: str, channel_id: int | None = None, **extra: Any
    ) -> dict[str, Any]:
        data = message_payload(
            channel_id or self.channel_id,
            who.user,
            text,
            guild_id=self.guild_id,
            member=member_payload(who.user),
            **extra,
        )
        self.bot._connection.parse_message_create(data)
        await settle()
        return data

    async def edit(self, message: dict[str, Any], text: str) -> None:
        data = {**message, "content": text, "edited_timestamp": now_iso()}
        self.bot._connection.parse_message_update(data)
        await settle()

    def _interaction(
        self, type_: int, who: Person, data: dict[str, Any], channel_id: int | None = None, **extra: Any
    ) -> dict[str, Any]:
        channel_id = channel_id or self.channel_id
        channel = self.guild.get_channel_or_thread(channel_id)
        payload: dict[str, Any] = {
            "id": str(snowflake(self.clock_s)),
            "application_id": str(APP_ID),
            "type": type_,
            "token": f"token-{snowflake()}",
            "version": 1,
            "guild_id": str(self.guild_id),
            "channel_id": str(channel_id),
            "channel": {  # the channel as interactions carry it: the channel object and the member's permissions
                **(
                    thread_payload(channel_id, self.guild_id, self.channel_id, channel.name)
                    if isinstance(channel, discord.Thread)
                    else text_channel_payload(channel_id, self.guild_id, getattr(channel, "name", "channel"))
                ),
                "permissions": str(who.permissions.value),
            },
            "member": member_payload(who.user, who.permissions),
            "app_permissions": str(self.app_permissions.value),
            "locale": who.locale,
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(self.guild_id)},
            "context": 0,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
            "data": data,
        }
        payload.update(extra)
        self.api.tokens.add(payload["token"])
        return payload

    def command_data(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        attachments: list[dict[str, Any]] = (),  # type: ignore[assignment]
    ) -> dict[str, Any]:
        command = self.bot.tree.get_command(name)
        assert command is not None, name
        params = {p.name: p for p in command.parameters}
        opts = []
        for key, value in (options or {}).items():
            opts.append({"name": key, "type": params[key].type.value, "value": value})
        data: dict[str, Any] = {
            "id": str(self.command_ids.get(name, 1)),
            "name": name,
            "type": 1,
            "options": opts,
        }
        if attachments:
            data["resolved"] = {"attachments": {a["id"]: a for a in attachments}}
        return data

    async def slash(
        self,
        who: Person,
        name: str,
        options: dict[str, Any] | None = None,
        attachments: dict[str, dict[str, Any]] | None = None,
        channel_id: int | None = None,
    ) -> Answer:
        """Run a slash command as ``who``; ``attachments`` maps an option name to an attachment payload."""
        options = dict(options or {})
        for option, attachment in (attachments or {}).items():
            options[option] = attachment["id"]
        data = self.command_data(name, options, list((attachments or {}).values()))
        payload = self._interaction(2, who, data, channel_id)
        self.bot._connection.parse_interaction_create(payload)
        await settle()
        return self.api.answers.setdefault(payload["token"], Answer())

    async def autocomplete(self, who: Person, name: str, option: str, typed: str) -> list[dict[str, Any]]:
        data = self.command_data(name)
        data["options"] = [{"name": option, "type": 3, "value": typed, "focused": True}]
        payload = self._interaction(4, who, data)
        self.bot._connection.parse_interaction_create(payload)
        await settle()
        return self.api.answers.setdefault(payload["token"], Answer()).choices

    async def component(
        self,
        who: Person,
        answer: Answer,
        custom_id: str,
        component_type: int,
        values: list[str] | None = None,
    ) -> Answer:
        """Press a button or choose in a select of an (ephemeral) answer, as ``who``."""
        message = self.api._answer_message(answer)
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = values
        payload = self._interaction(3, who, data, message=message)
        self.api.sources[payload["token"]] = answer
        self.bot._connection.parse_interaction_create(payload)
        await settle()
        return self.api.answers.setdefault(payload["token"], Answer())

    async def choose(self, who: Person, answer: Answer, value: str) -> Answer:
        select = answer.component(3)
        return await self.component(who, answer, select["custom_id"], 3, [value])

    async def press(self, who: Person, answer: Answer) -> Answer:
        button = answer.component(2)
        return await self.component(who, answer, button["custom_id"], 2)


async def settle(rounds: int = 50, timeout: float = 30.0) -> None:
    """Wait until every event, command and view callback discord.py scheduled has finished."""
    for _ in range(rounds):
        await asyncio.sleep(0)
        pending = [
            t
            for t in asyncio.all_tasks()
            if t is not asyncio.current_task() and not t.done() and t.get_name().startswith(_DISPATCH_TASKS)
        ]
        if not pending:
            return
        await asyncio.wait(pending, timeout=timeout)
    raise AssertionError("discord.py tasks did not settle")


@asynccontextmanager
async def offline_server(
    settings: Any,
    service: Any,
    monkeypatch: Any,
    stickers: list[tuple[dict[str, Any], bytes]] = (),  # type: ignore[assignment]
    guild_name: str = "Snack Club",
) -> AsyncIterator[OfflineServer]:
    """The real bot, logged in against the fake API, with one server (a #general channel and a thread)
    whose own stickers are ``stickers`` (payload, the bytes its CDN URL serves)."""
    from bot.discord import build_bot

    api = FakeDiscordAPI()
    bot = build_bot(settings, service)
    api.install(bot, monkeypatch)
    guild_id, channel_id, thread_id = snowflake(), snowflake(), snowflake()
    sticker_payloads = []
    for payload, data in stickers:
        payload = {**payload, "guild_id": str(guild_id)}
        sticker_payloads.append(payload)
        api.cdn[sticker_url(payload)] = data
    api.guild_stickers[guild_id] = sticker_payloads
    await bot.login("offline-token")
    bot._connection._add_guild_from_data(
        guild_payload(
            guild_id,
            guild_name,
            [text_channel_payload(channel_id, guild_id, "general")],
            [thread_payload(thread_id, guild_id, channel_id, "side-chat")],
            sticker_payloads,
        )
    )
    server = OfflineServer(bot, api, guild_id, channel_id, thread_id)
    for scope in api.synced.values():
        for command in scope:
            server.command_ids[command["name"]] = int(command["id"])
    try:
        yield server
    finally:
        await bot.close()
        await settle()
