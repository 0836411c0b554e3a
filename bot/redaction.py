"""Secrets never reach a log line, a traceback or a chat, whichever platform the bot runs on.

Platform tokens travel in URLs and headers, so any exception that quotes a request may carry one.
:func:`install_redaction` registers a token (and its secret part) with a log-record factory that rewrites
messages and tracebacks before any handler sees them; :func:`redact` cleans strings we build ourselves.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Iterable
from typing import Any

REDACTED = "<redacted>"
# Shorter strings are not redacted (they would match ordinary text).
MIN_SECRET_CHARS = 8

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False
# Case-insensitive: libraries re-case error texts (python-telegram-bot's ``capitalize()`` lower-cases the
# rest of a "Bad Request: …" description, token included), and a lower-cased token is still the token.
_pattern: re.Pattern[str] | None = None


def redact(text: str) -> str:
    """``text`` with every registered secret replaced, in any letter case (longest first, so the whole token
    goes at once)."""
    pattern = _pattern
    return text if pattern is None else pattern.sub(REDACTED, text)


def _contains_secret(text: str) -> bool:
    pattern = _pattern
    return pattern is not None and pattern.search(text) is not None


def install_redaction(token: str, parts: Iterable[str] = ()) -> None:
    """Register ``token`` and its secret ``parts``, and (once per process) wrap the log-record factory so no
    record keeps any of them."""
    global _installed
    with _lock:
        global _pattern
        _secrets.update(p for p in {token, *parts} if len(p) >= MIN_SECRET_CHARS)
        if _secrets:
            alternatives = "|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True))
            _pattern = re.compile(alternatives, re.IGNORECASE)
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
    """A short, secret-free description of an exception, for messages shown to people."""
    return redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
