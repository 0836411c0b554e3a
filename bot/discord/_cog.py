"""The slash commands: /sticker, /packs, /addpack, /removepack, /logging, /forget, /help.

Each command translates the interaction into calls on the engine's service and the answer back into Discord
messages; the rules (history window, which packs, engine cooldown, privacy) are the engine's. Answers are
ephemeral except the sticker itself and a change of the logging switch, which concern everyone there.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Literal, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord import _texts as texts
from bot.discord._errors import NotPackManager, Refusal
from bot.discord._packs import (
    MAX_UPLOAD_FILES,
    ImportOutcome,
    check_uploads,
    display_name,
    enable_existing_pack,
    import_server_stickers,
    import_upload,
    resolve,
    server_packs,
)
from bot.discord._refs import channel_chat, guild_chat, user_ref
from bot.discord._views import MAX_SELECT_OPTIONS, StickerPicker, StickerPoster
from engine.service import StickerService, SuggestResult

# Platform-side rate limits (the engine keeps its own per-chat /sticker cooldown as well).
STICKER_RATE, STICKER_PER_S = 3, 20.0  # /sticker: per channel
ADDPACK_RATE, ADDPACK_PER_S = 1, 30.0  # /addpack: per server (an import downloads and decodes every sticker)
FORGET_RATE, FORGET_PER_S = 1, 30.0  # /forget: per user
MAX_ABOUT_CHARS = 200
MAX_PACK_NAME_CHARS = 40
MESSAGE_LIMIT = 2000  # Discord's limit for a message's content
MAX_SKIPPED_SHOWN = 10

T = TypeVar("T")


def _per_channel(interaction: discord.Interaction) -> int | None:
    return interaction.channel_id


def _per_guild(interaction: discord.Interaction) -> int | None:
    return interaction.guild_id


def _per_user(interaction: discord.Interaction) -> int:
    return interaction.user.id


def is_pack_manager(permissions: discord.Permissions) -> bool:
    return permissions.administrator or permissions.manage_expressions or permissions.manage_guild


def pack_managers_only() -> Callable[[T], T]:
    """A server command for pack managers: shown by default only to members with Manage Server, and only
    members with Manage Expressions or Manage Server (in this channel) pass; others get a refusal.
    Put it below the cooldown decorator: it then runs first, and a refused member uses up no cooldown."""

    def predicate(interaction: discord.Interaction) -> bool:
        if not is_pack_manager(interaction.permissions):
            raise NotPackManager(texts.MANAGERS_ONLY)
        return True

    check = app_commands.check(predicate)
    shown = app_commands.default_permissions(manage_guild=True)
    in_servers = app_commands.guild_only()

    def decorate(command: T) -> T:
        return in_servers(shown(check(command)))

    return decorate


def require_guild(interaction: discord.Interaction) -> discord.Guild:
    """The server the command came from, as the bot knows it (stickers, channels)."""
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage(texts.GUILD_ONLY)
    guild = interaction.client.get_guild(interaction.guild_id)
    if guild is None:  # the server installed the commands (applications.commands) but not the bot itself
        raise Refusal(texts.NOT_A_MEMBER)
    return guild


def import_summary(outcome: ImportOutcome) -> str:
    report = outcome.report
    lines = [
        texts.IMPORTED.format(name=texts.md(outcome.display), added=report.added, unchanged=report.unchanged)
    ]
    if report.skipped:
        lines.append(texts.IMPORTED_SKIPPED.format(n=len(report.skipped)))
        for file, why in report.skipped[:MAX_SKIPPED_SHOWN]:
            lines.append(texts.SKIPPED_LINE.format(file=texts.md(file), why=texts.skip_reason(why)))
        if len(report.skipped) > MAX_SKIPPED_SHOWN:
            lines.append(texts.PACKS_MORE.format(n=len(report.skipped) - MAX_SKIPPED_SHOWN))
    if outcome.lottie_imported:
        lines.append(texts.LOTTIE_NOTE)
    if outcome.lottie_skipped:
        lines.append(texts.LOTTIE_SKIPPED_NOTE)
    return texts.clip("\n".join(lines), MESSAGE_LIMIT)


def nothing_to_suggest(result: SuggestResult) -> str:
    """Why the engine found nothing, in this user's language (its own sentence for an unknown reason)."""
    if result.reason == "no_conversation":
        return texts.NO_CONVERSATION
    if result.reason == "cooldown":
        return texts.STICKER_COOLDOWN.format(seconds=max(1, round(result.retry_after_s or 1)))
    if result.reason == "no_packs":
        return texts.NO_PACKS
    return texts.THINKING_FAILED


class StickerCog(commands.Cog, name="Stickers"):
    def __init__(self, bot: commands.Bot, service: StickerService) -> None:
        self.bot = bot
        self.service = service
        self.settings = service.settings
        self._pickers: weakref.WeakSet[StickerPicker] = weakref.WeakSet()

    async def cog_unload(self) -> None:
        for picker in list(self._pickers):
            picker.stop()

    # ------------------------------------------------------------------ /sticker
    @app_commands.command(name="sticker", description=texts.described("CMD_STICKER"))
    @app_commands.describe(k=texts.described("CMD_STICKER_K"), about=texts.described("CMD_STICKER_ABOUT"))
    @app_commands.guild_only()
    @app_commands.checks.cooldown(STICKER_RATE, STICKER_PER_S, key=_per_channel)
    async def sticker(
        self,
        interaction: discord.Interaction,
        k: app_commands.Range[int, 1, MAX_SELECT_OPTIONS] | None = None,
        about: app_commands.Range[str, 1, MAX_ABOUT_CHARS] | None = None,
    ) -> None:
        guild = require_guild(interaction)
        channel = interaction.channel
        if channel is None:
            raise app_commands.NoPrivateMessage(texts.GUILD_ONLY)
        permissions = interaction.app_permissions
        in_thread = isinstance(channel, discord.Thread)
        if not (permissions.send_messages_in_threads if in_thread else permissions.send_messages):
            raise Refusal(texts.CANNOT_SEND_HERE)
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self.service.suggest(
            channel_chat(channel),
            k,
            user=user_ref(interaction.user),
            text=about,
            packs_from=guild_chat(guild),
        )
        if not result.items:
            no_packs = not await self.service.list_packs(guild_chat(guild))
            await interaction.edit_original_response(
                content=texts.NO_PACKS if no_packs else nothing_to_suggest(result)
            )
            return
        poster = StickerPoster(channel, guild, interaction.user, permissions)  # type: ignore[arg-type]
        posted = await poster.post(result.items[0])
        picker = StickerPicker(self.service, poster, result, interaction, posted)
        self._pickers.add(picker)
        lead = texts.POSTED.format(label=picker.describe(0), pack=picker.pack_suffix(0))
        await interaction.edit_original_response(content=picker.summary(lead), view=picker)

    # ------------------------------------------------------------------ packs
    @app_commands.command(name="packs", description=texts.described("CMD_PACKS"))
    @app_commands.guild_only()
    async def packs(self, interaction: discord.Interaction) -> None:
        guild = require_guild(interaction)
        rows = await server_packs(self.service, guild)
        if not rows:
            await interaction.response.send_message(texts.NO_PACKS, ephemeral=True)
            return
        lines = [texts.PACKS_HEADER]
        for i, row in enumerate(rows):
            title = f" ({texts.md(row.title)})" if row.title else ""
            line = texts.PACK_LINE.format(
                name=texts.md(row.display), n=row.stickers, s=texts.plural(row.stickers), title=title
            )
            if sum(len(x) + 1 for x in lines) + len(line) > MESSAGE_LIMIT - 40:
                lines.append(texts.PACKS_MORE.format(n=len(rows) - i))
                break
            lines.append(line)
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    @app_commands.command(name="addpack", description=texts.described("CMD_ADDPACK"))
    @app_commands.describe(
        file=texts.described("CMD_ADDPACK_FILE"),
        name=texts.described("CMD_ADDPACK_NAME"),
        file2=texts.described("CMD_ADDPACK_FILE2"),
        file3=texts.described("CMD_ADDPACK_FILE2"),
    )
    @app_commands.checks.cooldown(ADDPACK_RATE, ADDPACK_PER_S, key=_per_guild)
    @pack_managers_only()
    async def addpack(
        self,
        interaction: discord.Interaction,
        file: discord.Attachment | None = None,
        name: app_commands.Range[str, 1, MAX_PACK_NAME_CHARS] | None = None,
        file2: discord.Attachment | None = None,
        file3: discord.Attachment | None = None,
    ) -> None:
        guild = require_guild(interaction)
        files = [f for f in (file, file2, file3) if f is not None][:MAX_UPLOAD_FILES]
        if files:
            check_uploads(files, self.settings)  # refuse a wrong file at once, before "thinking…"
        await interaction.response.defer(ephemeral=True, thinking=True)
        if files:
            outcome = await import_upload(self.service, guild, files, name, interaction.user)
        elif name:
            enabled = await enable_existing_pack(self.service, guild, name, interaction.user)
            await interaction.edit_original_response(
                content=texts.PACK_ENABLED.format(name=texts.md(enabled))
            )
            return
        else:
            outcome = await import_server_stickers(self.service, guild, interaction.user)
        await interaction.edit_original_response(content=import_summary(outcome))

    @app_commands.command(name="removepack", description=texts.described("CMD_REMOVEPACK"))
    @app_commands.describe(name=texts.described("CMD_REMOVEPACK_NAME"))
    @pack_managers_only()
    async def removepack(
        self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 100]
    ) -> None:
        guild = require_guild(interaction)
        row = resolve(await server_packs(self.service, guild), name)
        if row is None:
            raise Refusal(texts.NOT_IN_SERVER.format(name=texts.md(name)))
        await self.service.remove_pack(guild_chat(guild), row.internal)
        await interaction.response.send_message(
            texts.REMOVED_PACK.format(name=texts.md(display_name(guild.id, row.internal))), ephemeral=True
        )

    @removepack.autocomplete("name")
    async def _pack_names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild is None:
            return []
        wanted = current.casefold()
        return [
            app_commands.Choice(name=row.display, value=row.display)
            for row in await server_packs(self.service, interaction.guild)
            if wanted in row.display.casefold()
        ][:MAX_SELECT_OPTIONS]

    # ------------------------------------------------------------------ privacy
    @app_commands.command(name="logging", description=texts.described("CMD_LOGGING"))
    @app_commands.describe(state=texts.described("CMD_LOGGING_STATE"))
    @pack_managers_only()
    async def logging_(
        self, interaction: discord.Interaction, state: Literal["on", "off"] | None = None
    ) -> None:
        channel = interaction.channel
        if channel is None:
            raise app_commands.NoPrivateMessage(texts.GUILD_ONLY)
        chat = channel_chat(channel)
        where = getattr(channel, "mention", "this channel")
        if state is None:
            on = await self.service.logging_enabled(chat)
            current = texts.STATE_ON if on else texts.STATE_OFF
            await interaction.response.send_message(
                texts.LOGGING_STATE.format(state=current, channel=where), ephemeral=True
            )
            return
        await self.service.set_logging(chat, state == "on")
        detail = texts.LOGGING_ON_DETAIL if state == "on" else texts.LOGGING_OFF_DETAIL
        await interaction.response.send_message(
            texts.LOGGING_SET.format(
                user=interaction.user.mention,
                state=texts.STATE_ON if state == "on" else texts.STATE_OFF,
                channel=where,
                detail=detail,
            ),
            allowed_mentions=discord.AllowedMentions.none(),
        )

    @app_commands.command(name="forget", description=texts.described("CMD_FORGET"))
    @app_commands.checks.cooldown(FORGET_RATE, FORGET_PER_S, key=_per_user)
    async def forget(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        n = await self.service.forget(user_ref(interaction.user))
        await interaction.edit_original_response(content=texts.FORGOT.format(n=n, s=texts.plural(n)))

    @app_commands.command(name="help", description=texts.described("CMD_HELP"))
    async def help(self, interaction: discord.Interaction) -> None:
        text = texts.HELP.format(
            k=self.settings.top_k,
            days=self.settings.retention_days,
            messages=self.settings.retention_messages,
        )
        if not self.bot.intents.message_content:
            text += texts.NO_MESSAGE_CONTENT_NOTE
        await interaction.response.send_message(text, ephemeral=True)
