"""Privacy: `/logging on|off` (admins; whether a chat's messages may be kept for retraining) and `/forget`.

`/forget` asks first (a button only its sender can press), then deletes everything the engine keeps about that
user in every chat, and what the adapter holds about them in memory.
"""

from __future__ import annotations

import re
from contextlib import suppress

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot.telegram import _texts as texts
from bot.telegram._context import chat_ref, deps, message_and_chat, require_admin, user_ref

FORGET_PREFIX = "f"
FORGET_RE = re.compile(rf"^{FORGET_PREFIX}:(y|n):(\d+)$")
ON, OFF = "on", "off"


async def logging_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, chat = message_and_chat(update)
    d = deps(context)
    ref = chat_ref(chat)
    arg = context.args[0].lower() if context.args else None
    if arg not in (ON, OFF):
        state = texts.STATE_ON if await d.service.logging_enabled(ref) else texts.STATE_OFF
        await message.reply_text(
            texts.LOGGING_STATE.format(state=state), parse_mode=texts.PARSE_MODE, do_quote=True
        )
        return
    if not await require_admin(update, context):
        return
    await d.service.set_logging(ref, arg == ON)
    state = texts.STATE_ON if arg == ON else texts.STATE_OFF
    text = texts.LOGGING_SET.format(state=state) + (texts.LOGGING_SET_ON_DETAIL if arg == ON else "")
    await message.reply_text(text, parse_mode=texts.PARSE_MODE, do_quote=True)


async def forget_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, _ = message_and_chat(update)
    user = message.from_user
    if user is None or message.sender_chat is not None:  # an anonymous admin or a channel: no one to forget
        return
    buttons = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(texts.FORGET_YES, callback_data=f"{FORGET_PREFIX}:y:{user.id}"),
                InlineKeyboardButton(texts.FORGET_NO, callback_data=f"{FORGET_PREFIX}:n:{user.id}"),
            ]
        ]
    )
    await message.reply_text(
        texts.FORGET_CONFIRM.format(name=texts.html(user.first_name)),
        parse_mode=texts.PARSE_MODE,
        reply_markup=buttons,
        do_quote=True,
    )


async def forget_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    match = FORGET_RE.match(query.data or "")
    if match is None or int(match[2]) != query.from_user.id:
        await query.answer(texts.NOT_YOUR_BUTTON)
        return
    if match[1] == "n":
        await query.answer()
        with suppress(TelegramError):
            await query.edit_message_text(texts.FORGET_CANCELLED)
        return
    d = deps(context)
    n = await d.service.forget(user_ref(query.from_user))
    d.forget_user(query.from_user.id)
    await query.answer()
    with suppress(TelegramError):
        await query.edit_message_text(texts.FORGET_DONE.format(n=n, s="" if n == 1 else "s"))


def handlers() -> list[BaseHandler]:
    only_messages = filters.UpdateType.MESSAGE
    return [
        CommandHandler("logging", logging_command, filters=only_messages),
        CommandHandler("forget", forget_command, filters=only_messages),
        CallbackQueryHandler(forget_button, pattern=rf"^{FORGET_PREFIX}:"),
    ]
