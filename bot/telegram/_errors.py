"""Errors: one bad update never stops the bot, and the bot token never reaches a log line or a chat.

The token is part of every Bot API URL (``…/bot<token>/method``, ``…/file/bot<token>/path``), so any exception
that quotes a URL carries it. :func:`install_redaction` registers the token with a log-record factory that
rewrites messages and tracebacks before any handler sees them; :func:`redact` cleans strings we build.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.redaction import REDACTED, describe, redact
from bot.redaction import install_redaction as _install
from bot.telegram import _texts as texts
from engine import metrics

__all__ = ["REDACTED", "describe", "install_redaction", "on_error", "redact"]

log = logging.getLogger(__name__)


def install_redaction(token: str) -> None:
    """Telegram tokens are ``<bot id>:<secret>``: the id is public, the whole token and the secret are not."""
    _, _, secret = token.partition(":")
    _install(token, [secret])


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """PTB's error handler: log (redacted) and, where there is a chat, say sorry; never raise."""
    error = context.error
    metrics.ERRORS.labels("telegram", "handler").inc()
    log.error("update %s failed: %s", _update_id(update), error and describe(error), exc_info=error)
    if not isinstance(update, Update):
        return
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(texts.GENERIC_ERROR, show_alert=True)
        elif update.effective_message is not None and update.effective_chat is not None:
            await update.effective_message.reply_text(texts.GENERIC_ERROR, do_quote=True)
    except TelegramError as exc:
        log.warning("could not report the error to the chat: %s", describe(exc))


def _update_id(update: object) -> str:
    if update is None:
        return "(a background job)"
    return str(update.update_id) if isinstance(update, Update) else type(update).__name__
