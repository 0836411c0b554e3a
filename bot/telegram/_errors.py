"""Errors: one bad update never stops the bot, and the bot token never reaches a log line or a chat.

The token is part of every Bot API URL (``…/bot<token>/method``, ``…/file/bot<token>/path``), so any exception
that quotes a URL carries it. :func:`install_redaction` registers the token with a log-record factory that
rewrites messages and tracebacks before any handler sees them; :func:`redact` cleans strings we build.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.telegram import _texts as texts

log = logging.getLogger(__name__)

REDACTED = "<redacted>"
# The bot id before the colon is public; the secret is what follows it. Shorter strings are not redacted.
MIN_SECRET_CHARS = 8

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def _parts(token: str) -> set[str]:
    parts = {token}
    _, _, secret = token.partition(":")
    if len(secret) >= MIN_SECRET_CHARS:
        parts.add(secret)
    return {p for p in parts if len(p) >= MIN_SECRET_CHARS}


def redact(text: str) -> str:
    """``text`` with every registered secret replaced (longest first, so the whole token goes at once)."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _contains_secret(text: str) -> bool:
    return any(s in text for s in _secrets)


def install_redaction(token: str) -> None:
    """Register ``token`` and (once per process) wrap the log-record factory so no record keeps it."""
    global _installed
    with _lock:
        _secrets.update(_parts(token))
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if _secrets:
                _scrub(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is logging's problem, not ours
        message = str(record.msg)
    if _contains_secret(message):
        record.msg, record.args = redact(message), None
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if _contains_secret(text):
            record.exc_text = redact(text)  # formatters use exc_text when it is set
    if record.stack_info and _contains_secret(record.stack_info):
        record.stack_info = redact(record.stack_info)


def describe(exc: BaseException) -> str:
    """A short, token-free description of an exception, for reports shown to users."""
    return redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """PTB's error handler: log (redacted) and, where there is a chat, say sorry; never raise."""
    error = context.error
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
