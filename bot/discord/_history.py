"""The conversation of every text channel and thread, recorded per channel (one listener per event).

Without the privileged message-content intent Discord sends a server message's text only when it mentions
the bot, so most messages arrive empty and are not recorded; ``/sticker about:…`` still works then.
"""

from __future__ import annotations

import logging

import discord
from discord.ext import commands, tasks

from bot.discord._refs import CONVERSATION_CHANNELS, PLATFORM, channel_chat, guild_chat, user_ref
from engine.service import StickerService

log = logging.getLogger(__name__)

RETENTION_EVERY_H = 6.0  # quiet channels lose their old messages too, not only when new ones arrive
RECORDED_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})


def should_record(message: discord.Message) -> bool:
    """People's own text in a server's text channel or thread; never bots, webhooks or system messages."""
    return (
        message.guild is not None
        and isinstance(message.channel, CONVERSATION_CHANNELS)
        and message.type in RECORDED_TYPES
        and not message.author.bot
        and message.webhook_id is None
        and bool(message.content)
    )


class HistoryCog(commands.Cog, name="History"):
    def __init__(self, bot: commands.Bot, service: StickerService) -> None:
        self.bot = bot
        self.service = service

    async def cog_load(self) -> None:
        self.retention.start()

    async def cog_unload(self) -> None:
        self.retention.cancel()

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.stickers and message.guild is not None:
            await self._record_stickers(message)
        if not should_record(message):
            return
        reply_to = message.reference.message_id if message.reference else None
        try:
            await self.service.record(
                channel_chat(message.channel),
                user_ref(message.author),
                message.clean_content,
                message_id=str(message.id),
                reply_to=str(reply_to) if reply_to else None,
                at=message.created_at,
            )
        except Exception:  # one bad message never stops the bot; ids only in the log, never the text
            log.exception("could not record message %s in channel %s", message.id, message.channel.id)

    async def _record_stickers(self, message: discord.Message) -> None:
        """Stickers someone sent; the engine keeps them for retraining where logging is on and the
        sticker is one of the server's packs."""
        if (
            not isinstance(message.channel, CONVERSATION_CHANNELS)
            or message.author.bot
            or message.webhook_id is not None
            or message.type not in RECORDED_TYPES
        ):
            return
        assert message.guild is not None
        for item in message.stickers:
            try:
                await self.service.record_sticker(
                    channel_chat(message.channel),
                    user_ref(message.author),
                    str(item.id),
                    message_id=str(message.id),
                    at=message.created_at,
                    packs_from=guild_chat(message.guild),
                )
            except Exception:
                log.exception("could not record sticker %s of message %s", item.id, message.id)

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        message = payload.message
        if "content" not in payload.data or not should_record(message):
            return
        try:
            await self.service.edit(channel_chat(message.channel), str(message.id), message.clean_content)
        except Exception:
            log.exception(
                "could not apply the edit of message %s in channel %s", message.id, payload.channel_id
            )

    @tasks.loop(hours=RETENTION_EVERY_H)
    async def retention(self) -> None:
        try:
            deleted = await self.service.apply_retention(PLATFORM)
        except Exception:
            log.exception("history retention failed")
            return
        if deleted:
            log.info("retention: %d old messages deleted", deleted)

    @retention.before_loop
    async def _before_retention(self) -> None:
        await self.bot.wait_until_ready()
