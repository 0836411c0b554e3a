"""Posting a suggestion into the channel, and the requester's private picker to swap it for another.

Discord cannot attach a sticker to an interaction response (a webhook message), so the sticker goes into the
channel as the bot's own message and the picker lives in the ephemeral answer to ``/sticker``: only the
requester sees it. Picking another posts that one and deletes the previous post; every pick is feedback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import cast

import discord

from bot.discord import _texts as texts
from bot.discord._errors import Refusal, answer_error
from bot.discord._packs import display_name, server_pack_name
from bot.discord._refs import channel_chat, user_ref
from bot.i18n import use_language
from engine.service import StickerService, SuggestedSticker, SuggestResult

log = logging.getLogger(__name__)

PICKER_TIMEOUT_S = 600.0  # under the 15 minutes an interaction token may edit its answer
MAX_SELECT_OPTIONS = 25  # Discord's limit for a select menu
MAX_STICKERS_PER_MESSAGE = 3  # Discord's limit; /sticker posts one
LABEL_LIMIT = 100  # select option labels and descriptions
_UPLOAD_ID_HASH = re.compile(r"-[0-9a-f]{12}$")  # bot.discord._packs gives uploaded stickers a content hash


class StickerPoster:
    """Posts one suggested sticker into a channel: a real sticker when it is one of this server's own,
    otherwise its picture."""

    def __init__(
        self,
        channel: discord.abc.Messageable,
        guild: discord.Guild,
        requester: discord.abc.User,
        app_permissions: discord.Permissions,
    ) -> None:
        self.channel = channel
        self.guild = guild
        self.requester = requester
        self.app_permissions = app_permissions

    def guild_sticker(self, item: SuggestedSticker) -> discord.GuildSticker | None:
        if item.pack_name != server_pack_name(self.guild.id) or not item.platform_sticker_id.isdigit():
            return None
        sticker = discord.utils.get(self.guild.stickers, id=int(item.platform_sticker_id))
        return sticker if sticker is not None and sticker.available else None

    def label(self, item: SuggestedSticker) -> str:
        sticker = self.guild_sticker(item)
        if sticker is not None:
            name = sticker.name
        elif item.pack_name == server_pack_name(self.guild.id):  # deleted from the server since the import
            name = texts.GONE_STICKER
        else:
            name = _UPLOAD_ID_HASH.sub("", item.platform_sticker_id)
        return f"{item.emoji} {name}" if item.emoji else name

    async def post(self, item: SuggestedSticker) -> discord.Message:
        content = texts.FOR_USER.format(mention=self.requester.mention)
        quiet = discord.AllowedMentions.none()
        sticker = self.guild_sticker(item)
        try:
            if sticker is not None:
                return await self.channel.send(content, stickers=[sticker], allowed_mentions=quiet)
            if not self.app_permissions.attach_files:
                raise Refusal(texts.CANNOT_ATTACH)
            if not item.media_path.is_file():
                raise Refusal(texts.STICKER_FILE_MISSING)
            filename = re.sub(r"[^\w-]+", "_", self.label(item)).strip("_") or "sticker"
            picture = discord.File(item.media_path, filename=f"{filename[:60]}.png")
            return await self.channel.send(content, file=picture, allowed_mentions=quiet)
        except discord.Forbidden:
            raise Refusal(texts.CANNOT_SEND_HERE) from None


async def delete_quietly(message: discord.Message | None) -> None:
    if message is None:
        return
    try:
        await message.delete()
    except discord.NotFound:  # someone removed it already
        pass
    except discord.HTTPException as exc:
        log.warning("could not delete suggestion message %s: %s", message.id, exc.status)


class StickerPicker(discord.ui.View):
    """The ephemeral menu under a /sticker answer: post another of the top-k instead, or remove the post."""

    def __init__(
        self,
        service: StickerService,
        poster: StickerPoster,
        result: SuggestResult,
        origin: discord.Interaction,
        posted: discord.Message,
        timeout: float | None = PICKER_TIMEOUT_S,
    ) -> None:
        super().__init__(timeout=timeout)
        self.service = service
        self.poster = poster
        self.result = result
        self.items = result.items[:MAX_SELECT_OPTIONS]
        self.origin = origin
        self.requester_id = origin.user.id
        self.posted: discord.Message | None = posted
        self.current: int | None = 0
        self._lock = asyncio.Lock()
        # the decorators' texts are English (module import): word them for this /sticker's language
        cast("discord.ui.Select[StickerPicker]", self.pick).placeholder = texts.PICK_PLACEHOLDER
        self.remove.label = texts.BUTTON_REMOVE
        if len(self.items) < 2:
            self.remove_item(self.pick)
        self._sync_options()

    # ------------------------------------------------------------------ text and state
    def describe(self, index: int) -> str:
        item = self.items[index]
        return f"**{texts.md(self.poster.label(item))}**"

    def pack_suffix(self, index: int) -> str:
        pack = texts.md(display_name(self.poster.guild.id, self.items[index].pack_name))
        return texts.FROM_PACK.format(pack=pack)

    def summary(self, lead: str) -> str:
        return lead + (f"\n{texts.PICK_HINT}" if len(self.items) > 1 else "")

    def _sync_options(self) -> None:
        options = []
        for i, item in enumerate(self.items):
            options.append(
                discord.SelectOption(
                    label=texts.clip(f"{i + 1}. {self.poster.label(item)}", LABEL_LIMIT),
                    value=str(i),
                    description=texts.clip(display_name(self.poster.guild.id, item.pack_name), LABEL_LIMIT),
                    default=i == self.current,
                )
            )
        cast("discord.ui.Select[StickerPicker]", self.pick).options = options
        self.remove.disabled = self.posted is None

    # ------------------------------------------------------------------ callbacks
    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        use_language(interaction.locale.value)  # whoever pressed: the answer is in their language
        if interaction.user.id == self.requester_id:
            return True
        name = texts.md(getattr(self.origin.user, "display_name", self.origin.user.name))
        await interaction.response.send_message(texts.ONLY_REQUESTER.format(name=name), ephemeral=True)
        return False

    @discord.ui.select(placeholder=texts.PICK_PLACEHOLDER, min_values=1, max_values=1)
    async def pick(self, interaction: discord.Interaction, select: discord.ui.Select) -> None:
        await interaction.response.defer()
        index = int(select.values[0])
        if not 0 <= index < len(self.items):
            return
        async with self._lock:
            item = self.items[index]
            await self.service.feedback(
                self.result.suggestion_id,
                item.sticker_id,
                channel_chat(self.poster.channel),  # type: ignore[arg-type]
                user_ref(interaction.user),
                kind="picked",
            )
            if index == self.current and self.posted is not None:
                lead = texts.ALREADY_POSTED.format(label=self.describe(index))
            else:
                new = await self.poster.post(item)
                old, self.posted, self.current = self.posted, new, index
                await delete_quietly(old)
                lead = texts.REPLACED.format(label=self.describe(index), pack=self.pack_suffix(index))
            self._sync_options()
            await interaction.edit_original_response(content=self.summary(lead), view=self)

    @discord.ui.button(label=texts.BUTTON_REMOVE, emoji="🗑️", style=discord.ButtonStyle.secondary)
    async def remove(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer()
        async with self._lock:
            await delete_quietly(self.posted)
            self.posted, self.current = None, None
            self._sync_options()
            await interaction.edit_original_response(content=self.summary(texts.REMOVED), view=self)

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item
    ) -> None:
        await answer_error(interaction, error)

    async def on_timeout(self) -> None:
        with contextlib.suppress(discord.HTTPException):  # the answer was dismissed, or its token expired
            await self.origin.edit_original_response(view=None)
