"""Issue 8, secrets: the Discord bot token never appears in a log line, a traceback or an exit message."""

from __future__ import annotations

import logging

import discord
import pytest
from pydantic import SecretStr

from bot.discord._bot import StickerBot, serve
from engine.settings import Settings

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
