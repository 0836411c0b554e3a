"""Inline mode: `@bot` in any chat lists up to 50 stickers ranked for the conversation the user last wrote in.

An inline query carries no chat id. The ranking uses the chat the user last wrote in within
``settings.telegram_inline_window_s`` (its packs and its conversation); typing a query (an emoji, words) ranks
that chat's stickers for the query instead. Without a recent chat, a typed query ranks the packs of the user's
private chat with the bot. Only stickers Telegram hosts (from sticker sets: they have a file_id) are ranked
and listed: an inline answer cannot upload a local pack's picture. A chosen result is recorded as "inline"
feedback when Telegram reports it (BotFather → /setinlinefeedback).
"""

from __future__ import annotations

import logging
import re

from telegram import InlineQueryResultCachedSticker, InlineQueryResultsButton, Update
from telegram.ext import BaseHandler, ChosenInlineResultHandler, ContextTypes, InlineQueryHandler

from bot.telegram import _texts as texts
from bot.telegram._context import deps, private_chat_ref, user_ref
from bot.telegram._sticker import file_id_for

log = logging.getLogger(__name__)

INLINE_MAX_RESULTS = 50  # Bot API limit per answerInlineQuery
INLINE_CACHE_TIME_S = 15  # results depend on the conversation: Telegram may reuse them only briefly
HELP_START_PARAMETER = "inline-help"
RESULT_ID_RE = re.compile(r"^(\d+):(\d+)$")


async def inline_query(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.inline_query
    assert query is not None
    d = deps(context)
    user = user_ref(query.from_user)
    text = query.query.strip() or None
    chat = await d.service.recent_chat_for(user, d.settings.telegram_inline_window_s)
    if chat is None:
        chat = private_chat_ref(query.from_user) if text else None
    results: list[InlineQueryResultCachedSticker] = []
    if chat is not None:
        found = await d.service.suggest(
            chat,
            INLINE_MAX_RESULTS,
            user=user,
            text=text,
            cooldown=False,
            cap=INLINE_MAX_RESULTS,
            sendable_only=True,
        )
        if found.suggestion_id is not None:
            d.inline_chats.put(found.suggestion_id, chat)
            for item in found.items:
                file_id = file_id_for(d, item)
                if file_id:
                    results.append(
                        InlineQueryResultCachedSticker(
                            id=f"{found.suggestion_id}:{item.sticker_id}", sticker_file_id=file_id
                        )
                    )
    button = None
    if not results:
        button = InlineQueryResultsButton(text=texts.INLINE_HINT_BUTTON, start_parameter=HELP_START_PARAMETER)
    await query.answer(
        results[:INLINE_MAX_RESULTS], cache_time=INLINE_CACHE_TIME_S, is_personal=True, button=button
    )


async def chosen_result(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chosen = update.chosen_inline_result
    assert chosen is not None
    match = RESULT_ID_RE.match(chosen.result_id)
    if match is None:
        return
    suggestion_id, sticker_id = int(match[1]), int(match[2])
    d = deps(context)
    user = user_ref(chosen.from_user)
    chat = (
        d.inline_chats.get(suggestion_id)
        or await d.service.recent_chat_for(user, d.settings.telegram_inline_window_s)
        or private_chat_ref(chosen.from_user)
    )
    await d.service.feedback(suggestion_id, sticker_id, chat, user, kind="inline")


def handlers() -> list[BaseHandler]:
    return [InlineQueryHandler(inline_query), ChosenInlineResultHandler(chosen_result)]
