"""One answer for every failed interaction: a sentence only the user sees, never a crash of the bot.

Expected refusals (cooldown, permissions, a bad upload) are answered with their own sentence; anything else
is logged with its traceback (ids only: no message text, no token) and answered with a generic apology.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from bot.discord import _texts as texts
from engine import metrics
from engine.errors import PackError

log = logging.getLogger(__name__)


class Refusal(app_commands.AppCommandError):
    """A user-facing reason a request cannot be done; its message is shown to the user as it is."""


class NotPackManager(app_commands.CheckFailure):
    """The member lacks Manage Expressions and Manage Server."""


def user_message(error: BaseException, command: str | None = None) -> str | None:
    """The sentence for an expected error, or None for a bug."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, Refusal):
        return str(error)
    if isinstance(error, PackError):
        return texts.pack_refusal(error)
    if isinstance(error, app_commands.CommandOnCooldown):
        what = f"`/{command}`" if command else texts.THIS_COMMAND
        return texts.COOLDOWN.format(command=what, seconds=max(1.0, error.retry_after))
    if isinstance(error, NotPackManager):
        return texts.MANAGERS_ONLY
    if isinstance(error, app_commands.NoPrivateMessage):
        return texts.GUILD_ONLY
    if isinstance(error, app_commands.CheckFailure):
        return str(error) or texts.MANAGERS_ONLY
    if isinstance(error, discord.Forbidden):
        return texts.CANNOT_SEND_HERE
    if isinstance(error, discord.HTTPException):
        return texts.DISCORD_FAILED.format(status=error.status)
    return None


async def answer_error(interaction: discord.Interaction, error: BaseException) -> None:
    command = interaction.command.qualified_name if interaction.command else None
    message = user_message(error, command)
    if message is None:
        original = getattr(error, "original", error)
        metrics.ERRORS.labels("discord", "handler").inc()
        log.error(
            "interaction %s (%s) failed in guild %s channel %s",
            interaction.id,
            command or interaction.type.name,
            interaction.guild_id,
            interaction.channel_id,
            exc_info=(type(original), original, original.__traceback__),
        )
        message = texts.FAILED
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(message, ephemeral=True)
        elif interaction.type is discord.InteractionType.component:  # keep the menu the user pressed
            await interaction.followup.send(message, ephemeral=True)
        else:  # replace the "thinking…" answer
            await interaction.edit_original_response(content=message, view=None)
    except discord.HTTPException as exc:  # the interaction expired or was dismissed: nothing left to tell
        log.info("could not answer interaction %s: %s", interaction.id, exc.status)
