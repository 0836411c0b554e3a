"""Issue 8, secrets: the Discord bot token never appears in a log line, a traceback or an exit message."""

from __future__ import annotations

import asyncio
import logging

import discord
import pytest
from pydantic import SecretStr

from bot.discord._bot import StickerBot, redact_token, serve
from engine.settings import Settings
from tests.auxil.discord import FakeDiscordAPI, OfflineServer, Person

# The shape of a real token (base64 bot id . timestamp . HMAC), not a real one.
TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd"
HMAC = TOKEN.rpartition(".")[2]


async def test_the_token_never_reaches_logs_or_the_exit_message(
    migrated: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    migrated.discord_token = SecretStr(TOKEN)

    async def leaky_start(self: StickerBot, token: str, *, reconnect: bool = True) -> None:
        # what a library may do on a failed request: log the header, raise with the request in the message
        logging.getLogger("discord.http").warning("request failed: Authorization: Bot %s", token)
        logging.getLogger("discord.http").error("the HMAC part alone: %s", token.rpartition(".")[2])
        raise RuntimeError(f"POST /gateway failed with headers {{'Authorization': 'Bot {token}'}}")

    monkeypatch.setattr(StickerBot, "start", leaky_start)
    with caplog.at_level(logging.DEBUG), pytest.raises(SystemExit) as exc:
        await serve(migrated)
    shown = str(exc.value)
    assert shown.startswith("The Discord bot stopped: RuntimeError") and "<redacted>" in shown
    logged = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert "<redacted>" in logged and "Traceback" in logged  # the traceback is kept, scrubbed
    for text in (shown, logged):
        assert TOKEN not in text and HMAC not in text


async def test_login_failure_says_what_to_do_without_the_token(migrated: Settings, monkeypatch):
    migrated.discord_token = SecretStr(TOKEN)

    async def refuse(self: StickerBot, token: str, *, reconnect: bool = True) -> None:
        raise discord.LoginFailure(f"Improper token has been passed: {token}")

    monkeypatch.setattr(StickerBot, "start", refuse)
    with pytest.raises(SystemExit) as exc:
        await serve(migrated)
    assert "DISCORD_BOT_TOKEN" in str(exc.value) and TOKEN not in str(exc.value)


def _leaks(text: str) -> bool:
    return TOKEN in text or HMAC in text or TOKEN.partition(".")[2] in text


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Each captured record as the CLI's handler prints it (logging.basicConfig's plain Formatter), with any
    traceback: what would reach a terminal or a log file."""
    formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    return caplog.text + "\n".join(formatter.format(r) for r in caplog.records)


async def test_startup_through_the_real_login_never_logs_the_token(
    migrated: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """serve → discord.py's own login with the token (against the offline API) → setup_hook: cogs, command
    sync, and everything discord.py logs at DEBUG on the way, plus a gateway-style debug line that quotes the
    IDENTIFY payload."""
    migrated.discord_token = SecretStr(TOKEN)
    logged_in: list[object] = []

    async def offline_start(self: StickerBot, token: str, *, reconnect: bool = True) -> None:
        FakeDiscordAPI().install(self, monkeypatch)
        await self.login(token)
        logged_in.append(self.user)
        # (discord.gateway itself never logs below INFO here; a logger that still logs at DEBUG must not leak it)
        logging.getLogger("discord.client").debug("sent IDENTIFY %r", {"op": 2, "d": {"token": token}})

    monkeypatch.setattr(StickerBot, "start", offline_start)
    with caplog.at_level(logging.DEBUG):
        await serve(migrated)
    assert logged_in and logged_in[0] is not None
    logged = _everything_logged(caplog)
    assert "synced" in logged and "IDENTIFY" in logged  # the start-up path ran and logged
    assert "<redacted>" in logged and not _leaks(logged)


async def test_errors_in_handlers_never_show_the_token(
    server: OfflineServer,
    service,
    alice: Person,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    """A command, our message listener, a listener of discord.py's own dispatch and a background task each
    fail with the token in the exception's message: logged with their tracebacks, scrubbed; the user sees
    a plain apology."""
    redact_token(TOKEN)  # what serve does before the bot starts

    def leaky(where: str) -> RuntimeError:
        return RuntimeError(f"{where}: GET https://discord.com/api/v10/gateway?auth=Bot%20{TOKEN} failed")

    async def failing_suggest(*args: object, **kwargs: object) -> None:
        raise leaky("suggest")

    async def failing_record(*args: object, **kwargs: object) -> None:
        raise leaky("record") from ValueError(f"the cause quotes the HMAC {HMAC}")

    async def failing_listener(message: discord.Message) -> None:
        raise leaky("listener")

    monkeypatch.setattr(service, "suggest", failing_suggest)
    monkeypatch.setattr(service, "record", failing_record)
    server.bot.add_listener(failing_listener, "on_message")
    with caplog.at_level(logging.DEBUG):
        answer = await server.slash(alice, "sticker")
        await server.say(alice, "pizza for everyone")
        asyncio.get_running_loop().call_exception_handler(
            {"message": "Task exception was never retrieved", "exception": leaky("task")}
        )
    assert answer.content and not _leaks(answer.content)
    logged = _everything_logged(caplog)
    for where in ("suggest", "record", "listener", "task"):
        assert f"{where}: GET" in logged, where  # each failure was logged ...
    assert logged.count("Traceback") >= 4  # ... with its traceback ...
    assert not _leaks(logged)  # ... and without the token
