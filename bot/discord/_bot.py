"""The bot: intents, the command tree that answers every error, the cogs, command sync, and `run`.

The token is read from ``settings.discord_token`` once, in :func:`run`, and handed to discord.py; it is never
logged or kept anywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord._cog import StickerCog
from bot.discord._errors import answer_error
from bot.discord._history import HistoryCog
from bot.discord._texts import Translator
from bot.discord.settings import DiscordSettings
from bot.i18n import use_language
from bot.redaction import describe, install_redaction
from engine.service import StickerService

log = logging.getLogger(__name__)

TOKEN_REFUSED = "Discord refused the bot token: check DISCORD_BOT_TOKEN (Developer Portal → your app → Bot)."
INTENT_MISSING = (
    "Discord refused the message-content intent: switch on 'Message Content Intent' in the Developer Portal "
    "(your app → Bot → Privileged Gateway Intents), or set STICKERPICK_DISCORD_MESSAGE_CONTENT=false to run "
    "without it (/sticker then works from its `about:` text)."
)


def intents_for(settings: DiscordSettings) -> discord.Intents:
    """Only what the bot uses: servers and channels, server messages, server stickers, and (privileged,
    optional) the text of messages."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.expressions = True
    intents.message_content = settings.discord_message_content
    return intents


class StickerTree(app_commands.CommandTree):
    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Every command (its checks and errors too) answers in the language of the user's Discord client."""
        use_language(interaction.locale.value)
        return True

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError, /
    ) -> None:
        await answer_error(interaction, error)


class _StickerBotMixin:
    """What both bot classes share; a mixin so that sharding is only a choice of discord.py base class."""

    service: StickerService
    settings: DiscordSettings

    def _options(self, settings: DiscordSettings) -> dict[str, Any]:
        return {
            "command_prefix": commands.when_mentioned,  # no text commands: everything is a slash command
            "help_command": None,
            "tree_cls": StickerTree,
            "intents": intents_for(settings),
            "allowed_mentions": discord.AllowedMentions.none(),
            "max_messages": None,  # no message cache: edits arrive as raw events
            "chunk_guilds_at_startup": False,
        }

    async def setup_hook(self) -> None:
        bot: commands.Bot = self  # type: ignore[assignment]
        await bot.add_cog(HistoryCog(bot, self.service))
        await bot.add_cog(StickerCog(bot, self.service))
        await bot.tree.set_translator(Translator())
        await sync_commands(bot.tree, self.settings)


class StickerBot(_StickerBotMixin, commands.Bot):
    def __init__(self, settings: DiscordSettings, service: StickerService) -> None:
        self.settings, self.service = settings, service
        super().__init__(**self._options(settings))


class ShardedStickerBot(_StickerBotMixin, commands.AutoShardedBot):
    def __init__(self, settings: DiscordSettings, service: StickerService) -> None:
        self.settings, self.service = settings, service
        super().__init__(shard_count=settings.discord_shard_count, **self._options(settings))


# Message text never reaches the logs: at DEBUG discord.py logs every gateway event (message content) and
# every REST call with its payload; those loggers never log below INFO here, whatever the log level.
CONTENT_LOGGERS = ("discord.gateway", "discord.http", "discord.webhook", "discord.state")


def build_bot(settings: DiscordSettings, service: StickerService) -> commands.Bot | commands.AutoShardedBot:
    """The bot, not yet logged in; :func:`run` starts it, tests drive it offline."""
    # No voice here: spare the log discord.py's warnings about the voice libraries it would need.
    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
    for name in CONTENT_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger(name).level))
    if settings.discord_sharded:
        return ShardedStickerBot(settings, service)
    return StickerBot(settings, service)


SYNCED_FILE = "discord-commands.json"  # in STICKERPICK_HOME: the hash of what was last synced, per scope


def synced_path(settings: DiscordSettings) -> Path:
    return Path(settings.home) / SYNCED_FILE


def forget_synced_commands(settings: DiscordSettings) -> bool:
    """Make the next start sync the commands whatever was synced before (`stickerpick discord
    --sync-commands`). True if there was a record to forget."""
    path = synced_path(settings)
    existed = path.is_file()
    path.unlink(missing_ok=True)
    return existed


async def command_payload_hash(tree: app_commands.CommandTree, guild: discord.Object | None) -> str:
    """The hash of exactly what ``tree.sync(guild=…)`` would send (translations included)."""
    translator = tree.translator
    commands = tree._get_all_commands(guild=guild)  # what sync() itself reads
    if translator is not None:
        payload = [await c.get_translated_payload(tree, translator) for c in commands]
    else:
        payload = [c.to_dict(tree) for c in commands]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _read_synced(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


async def sync_commands(tree: app_commands.CommandTree, settings: DiscordSettings) -> None:
    """Register the slash commands with Discord: in the development servers only (instant) when
    ``discord_guild_ids`` is set, else globally (Discord may take a while to show changes).

    Only when they changed: the hash of each scope's payload is kept in the home folder (per application),
    and a scope whose payload hashes the same as last time is not sent again (Discord rate-limits command
    updates, and every restart of every process would otherwise re-send them)."""
    if not settings.discord_sync_commands:
        return
    path = synced_path(settings)
    record = _read_synced(path)
    app_id = tree.client.application_id
    scopes: list[discord.Object | None] = (
        [discord.Object(g) for g in settings.discord_guild_ids] if settings.discord_guild_ids else [None]
    )
    changed = False
    for guild in scopes:
        if guild is not None:
            tree.copy_global_to(guild=guild)
        key = f"{app_id}:{guild.id if guild else 'global'}"
        digest = await command_payload_hash(tree, guild)
        if record.get(key) == digest:
            log.info("commands unchanged (%s): not synced", f"server {guild.id}" if guild else "global")
            continue
        synced = await tree.sync(guild=guild)
        record[key], changed = digest, True
        if guild is None:
            log.info("synced %d global commands", len(synced))
        else:
            log.info("synced %d commands to server %s", len(synced), guild.id)
    if changed:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        except OSError as exc:  # a read-only home: sync again next time, no reason not to run
            log.warning("could not record the synced commands in %s: %s", path, exc)


@contextlib.asynccontextmanager
async def _health(settings: DiscordSettings, service: StickerService) -> AsyncIterator[None]:
    """The /healthz and /metrics endpoint while the bot runs, when STICKERPICK_METRICS_PORT is set."""
    if settings.metrics_port is None:
        yield
        return
    from bot.health import HealthServer

    async with HealthServer(service, settings.metrics_port, settings.metrics_listen):
        yield


def redact_token(token: str) -> None:
    """From now on no log record, traceback or :func:`~bot.redaction.describe` text shows ``token`` or its
    secret parts: Discord tokens are ``<base64 bot id>.<timestamp>.<hmac>``; the id is public, the rest is
    not (the HMAC alone would do for an attacker who knows the id)."""
    install_redaction(token, [token.partition(".")[2], token.rpartition(".")[2]])


async def serve(settings: DiscordSettings) -> None:
    from bot.operator_texts import startup_error
    from engine.errors import ModelMissing, SchemaOutOfDate
    from engine.service import open_service

    if settings.discord_token is None:
        raise SystemExit("Set DISCORD_BOT_TOKEN (environment or .env) to your application's bot token.")
    try:
        service = await open_service(settings)
    except (SchemaOutOfDate, ModelMissing) as exc:
        raise SystemExit(startup_error(exc)) from None
    token = settings.discord_token.get_secret_value()
    redact_token(token)
    bot = build_bot(settings, service)
    loop = asyncio.get_running_loop()
    closing: list[asyncio.Task[None]] = []

    def on_sigterm() -> None:  # systemd, docker stop, Kubernetes: close like Ctrl-C does
        log.info("SIGTERM: closing the Discord connection")
        if not closing:
            closing.append(loop.create_task(bot.close()))

    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals off the main thread / Windows
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        async with _health(settings, service), bot:
            await bot.start(token)
        if closing:
            await closing[0]
    except discord.LoginFailure:
        raise SystemExit(TOKEN_REFUSED) from None
    except discord.PrivilegedIntentsRequired:
        raise SystemExit(INTENT_MISSING) from None
    except Exception as exc:  # anything else: logged (scrubbed) with its traceback, then a clean exit
        log.error("the Discord bot stopped", exc_info=exc)
        raise SystemExit(f"The Discord bot stopped: {describe(exc)}") from None
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
        await service.close()


def run(settings: DiscordSettings) -> None:
    """Run the Discord bot until interrupted (`stickerpick discord`): Ctrl-C or SIGTERM close the connection
    and the service (pending messages are committed)."""
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: discord.py and the service close on the way out
        asyncio.run(serve(settings))
