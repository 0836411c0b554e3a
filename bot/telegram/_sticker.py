"""`/sticker [k]` and its buttons.

The bot replies to the command, in its thread, with the best sticker. Under it: one button per other sticker of
the top k (its rank and emoji) — pressing one sends that sticker in place of the shown one — then ✓ (keep: the
buttons go away) and ✕ (none fit: the sticker goes away). Only the person who asked may press them. A sticker
the requester chose (by swapping to it, or by keeping the first one) is recorded as "picked" feedback.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from contextlib import suppress
from pathlib import Path
from typing import Any

from PIL import Image
from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    ReplyParameters,
    Update,
    User,
)
from telegram.error import BadRequest, TelegramError
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot.telegram import _texts as texts
from bot.telegram._admin import AdminCheckFailed
from bot.telegram._context import (
    SUGGESTION_TTL_S,
    Deps,
    PendingSuggestion,
    chat_ref,
    deps,
    is_group,
    message_and_chat,
    speaker,
    thread_of,
    user_ref,
)
from bot.telegram._errors import describe
from bot.telegram._packs import ensure_group_set
from engine.service import SuggestedSticker, SuggestResult

log = logging.getLogger(__name__)

CALLBACK_PREFIX = "s"
CALLBACK_RE = re.compile(rf"^{CALLBACK_PREFIX}:(\d+):(\d+|k|x):(\d+)$")
KEEP, REMOVE = "k", "x"
ALTERNATIVES_PER_ROW = 5
STICKER_SIDE = 512  # Telegram shows stickers at 512 px on the longer side


def parse_k(args: list[str] | None) -> int | None:
    """`/sticker 3` → 3; anything else → the default (the engine clamps to its limits)."""
    if args and args[0].isdigit():
        return int(args[0])
    return None


def keyboard(suggestion_id: int, items: list[SuggestedSticker], shown: int) -> InlineKeyboardMarkup:
    others = [
        InlineKeyboardButton(
            f"{item.rank + 1} {item.emoji or ''}".strip(),
            callback_data=f"{CALLBACK_PREFIX}:{suggestion_id}:{item.rank}:{shown}",
        )
        for item in items
        if item.rank != shown
    ]
    rows = [others[i : i + ALTERNATIVES_PER_ROW] for i in range(0, len(others), ALTERNATIVES_PER_ROW)]
    rows.append(
        [
            InlineKeyboardButton(
                texts.BUTTON_KEEP, callback_data=f"{CALLBACK_PREFIX}:{suggestion_id}:{KEEP}:{shown}"
            ),
            InlineKeyboardButton(
                texts.BUTTON_REMOVE, callback_data=f"{CALLBACK_PREFIX}:{suggestion_id}:{REMOVE}:{shown}"
            ),
        ]
    )
    return InlineKeyboardMarkup(rows)


def webp_bytes(path: Path) -> bytes:
    """A stored still as a WebP sticker (what sendSticker accepts for uploads)."""
    with Image.open(path) as src:
        im = src.convert("RGBA")
        scale = STICKER_SIDE / max(im.size)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(size, Image.Resampling.LANCZOS)
        out = io.BytesIO()
        im.save(out, format="WEBP", lossless=True)
        return out.getvalue()


def file_id_for(d: Deps, item: SuggestedSticker) -> str | None:
    """What Telegram can send without an upload: the set's file_id, or the one it gave our earlier upload."""
    return item.platform_file_id or d.uploads.get(item.sticker_id)


async def send_suggested(
    bot: Bot,
    d: Deps,
    chat_id: int,
    item: SuggestedSticker,
    reply_to: int | None,
    thread_id: int | None,
    markup: InlineKeyboardMarkup | None,
) -> Message:
    """Send one suggested sticker: by file_id when Telegram knows it, else upload the stored still once."""
    reply = ReplyParameters(message_id=reply_to, allow_sending_without_reply=True) if reply_to else None
    kwargs: dict[str, Any] = {
        "reply_parameters": reply,
        "message_thread_id": thread_id,
        "reply_markup": markup,
    }
    file_id = file_id_for(d, item)
    if file_id:
        try:
            return await bot.send_sticker(chat_id, file_id, **kwargs)
        except BadRequest as exc:  # a file_id Telegram no longer accepts: fall back to the stored picture
            log.info("sticker %s: file_id refused (%s); uploading it", item.sticker_id, describe(exc))
    data = await asyncio.to_thread(webp_bytes, item.media_path)
    sent = await bot.send_sticker(chat_id, InputFile(data, filename="sticker.webp"), **kwargs)
    if sent.sticker is not None:
        d.uploads.put(item.sticker_id, sent.sticker.file_id)
    return sent


async def _bot_cannot_read(context: ContextTypes.DEFAULT_TYPE, d: Deps, chat_id: int) -> bool:
    """Privacy mode is on and the bot is not an admin here: it sees commands only."""
    if context.bot.can_read_all_group_messages:
        return False
    try:
        return context.bot.id not in await d.admins.admins(context.bot, chat_id)
    except AdminCheckFailed:
        return False


def nothing_to_suggest(result: SuggestResult) -> str:
    """Why the engine found nothing, in this user's language (its own sentence for an unknown reason)."""
    if result.reason == "no_conversation":
        return texts.NO_CONVERSATION
    if result.reason == "cooldown":
        return texts.COOLDOWN.format(seconds=max(1, round(result.retry_after_s or 1)))
    return texts.NO_PACKS if result.reason == "no_packs" else texts.html(texts.GENERIC_ERROR)


async def sticker_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, chat = message_and_chat(update)
    d = deps(context)
    if not is_group(chat):
        await message.reply_text(texts.PRIVATE_ONLY_GROUPS.format(bot=context.bot.username))
        return
    await ensure_group_set(context, chat)
    ref = chat_ref(chat)
    result = await d.service.suggest(ref, parse_k(context.args), user=speaker(message))
    if not result.items or result.suggestion_id is None:
        # The engine says why there is nothing; "no packs" gets this platform's wording (/addpack, not the CLI).
        no_packs = not await d.service.list_packs(ref)
        text = texts.NO_PACKS if no_packs else nothing_to_suggest(result)
        if not await d.service.recent(ref) and await _bot_cannot_read(context, d, chat.id):
            text += "\n\n" + texts.PRIVACY_NOTE
        await message.reply_text(text, parse_mode=texts.PARSE_MODE, do_quote=True)
        return
    sid = result.suggestion_id
    thread = thread_of(message)
    await send_suggested(
        context.bot, d, chat.id, result.items[0], message.message_id, thread, keyboard(sid, result.items, 0)
    )
    requester: User | None = message.from_user
    d.suggestions.put(
        sid,
        PendingSuggestion(
            chat=ref,
            requester_id=requester.id if requester else 0,
            requester_name=requester.full_name if requester else "the person who asked",
            items=result.items,
            command_message_id=message.message_id,
            thread_id=thread,
        ),
    )


async def pending_from_database(d: Deps, sid: int, message: Message) -> PendingSuggestion | None:
    """A /sticker answer this process does not hold (another worker gave it, or this one before a restart),
    rebuilt from the suggestion the engine stored: with several workers behind a load balancer a button press
    may reach any of them. None when it is not this chat's, too old, or its requester was forgotten."""
    stored = await d.service.stored_suggestion(sid, chat_ref(message.chat), max_age_s=SUGGESTION_TTL_S)
    if stored is None or stored.requester is None or not stored.requester.user_id.lstrip("-").isdigit():
        return None
    reply = message.reply_to_message  # the bot answered the command as a reply to it
    return PendingSuggestion(
        chat=chat_ref(message.chat),
        requester_id=int(stored.requester.user_id),
        requester_name=stored.requester.name or "the person who asked",
        items=stored.items,
        command_message_id=reply.message_id if reply is not None else 0,
        thread_id=thread_of(message),
        picked=stored.picked,
    )


async def _record_pick(d: Deps, sid: int, pending: PendingSuggestion, rank: int, user: User) -> None:
    if rank in pending.picked:
        return
    pending.picked.add(rank)
    await d.service.feedback(sid, pending.items[rank].sticker_id, pending.chat, user_ref(user), kind="picked")


async def _settle(
    d: Deps, query: CallbackQuery, sid: int, pending: PendingSuggestion, action: str, shown: int
) -> None:
    """Keep (the shown sticker counts as picked) or remove the suggestion; either way it is settled."""
    d.suggestions.pop(sid)
    d.settled.put(sid, True)
    if action == KEEP:
        if shown < len(pending.items):
            await _record_pick(d, sid, pending, shown, query.from_user)
        with suppress(TelegramError):
            await query.edit_message_reply_markup(None)
        await query.answer(texts.KEPT)
        return
    with suppress(TelegramError):
        await query.delete_message()
    await query.answer()


async def sticker_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    match = CALLBACK_RE.match(query.data or "")
    if match is None:
        await query.answer()
        return
    sid, action, shown = int(match[1]), match[2], int(match[3])
    d = deps(context)
    pending = d.suggestions.get(sid)
    if not isinstance(query.message, Message):  # too old for Telegram to show us
        await query.answer(texts.SUGGESTION_EXPIRED)
        return
    if pending is None and not d.settled.get(sid):
        pending = await pending_from_database(d, sid, query.message)
        if pending is not None:
            d.suggestions.put(sid, pending)
    if pending is None:
        await query.answer(texts.SUGGESTION_EXPIRED)
        with suppress(TelegramError):
            await query.edit_message_reply_markup(None)
        return
    if query.from_user.id != pending.requester_id:
        await query.answer(texts.ONLY_REQUESTER.format(name=pending.requester_name))
        return
    if action in (KEEP, REMOVE):
        await _settle(d, query, sid, pending, action, shown)
        return
    rank = int(action)
    if rank >= len(pending.items) or rank == shown:
        await query.answer()
        return
    try:
        await send_suggested(
            context.bot,
            d,
            int(pending.chat.chat_id),
            pending.items[rank],
            pending.command_message_id,
            pending.thread_id,
            keyboard(sid, pending.items, rank),
        )
    except TelegramError as exc:
        log.warning("could not send sticker %s: %s", pending.items[rank].sticker_id, describe(exc))
        await query.answer(texts.SEND_FAILED, show_alert=True)
        return
    with suppress(TelegramError):  # the sticker it replaces goes; too old to delete → it just stays
        await query.delete_message()
    await _record_pick(d, sid, pending, rank, query.from_user)
    await query.answer()


def handlers() -> list[BaseHandler]:
    return [
        CommandHandler("sticker", sticker_command, filters=filters.UpdateType.MESSAGE),
        CallbackQueryHandler(sticker_button, pattern=rf"^{CALLBACK_PREFIX}:"),
    ]
