"""Dialogue history: every text message (or caption) the bot sees in a group is recorded for that chat; edits
update it; commands and service messages (joins, pins, title changes…) are not conversation and are ignored.

The bot sees a group's messages only as an admin or with privacy mode off (BotFather → /setprivacy).
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, ContextTypes, MessageHandler, filters

from bot.telegram._context import chat_ref, deps, message_and_chat, speaker

CONVERSATION = filters.ChatType.GROUPS & (filters.TEXT | filters.CAPTION) & ~filters.COMMAND


async def record_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, chat = message_and_chat(update)
    text = message.text or message.caption or ""
    reply = message.reply_to_message
    await deps(context).service.record(
        chat_ref(chat),
        speaker(message),
        text,
        message_id=str(message.message_id),
        reply_to=str(reply.message_id) if reply is not None else None,
        at=message.date,
    )


async def record_sticker(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A sticker someone sent in a group; the engine keeps it for retraining if logging is on there
    and the sticker is one of the chat's packs (keyed by its stable ``file_unique_id``)."""
    message, chat = message_and_chat(update)
    if message.sticker is None:
        return
    await deps(context).service.record_sticker(
        chat_ref(chat),
        speaker(message),
        message.sticker.file_unique_id,
        message_id=str(message.message_id),
        at=message.date,
    )


async def record_edit(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, chat = message_and_chat(update)
    await deps(context).service.edit(
        chat_ref(chat), str(message.message_id), message.text or message.caption or ""
    )


def handlers() -> list[BaseHandler]:
    return [
        MessageHandler(filters.UpdateType.MESSAGE & CONVERSATION, record_message),
        MessageHandler(
            filters.UpdateType.MESSAGE & filters.ChatType.GROUPS & filters.Sticker.ALL, record_sticker
        ),
        MessageHandler(filters.UpdateType.EDITED_MESSAGE & CONVERSATION, record_edit),
    ]
