"""The Telegram adapter (python-telegram-bot v22): a thin layer translating updates into engine service calls.

Private modules, one concern each: ``_app`` (Application, handlers, polling/webhook), ``_history`` (recording
group messages), ``_sticker`` (`/sticker` and its buttons), ``_inline`` (inline mode), ``_packs`` (adding and
removing packs), ``_privacy`` (`/logging`, `/forget`), ``_help``, ``_membership`` (the bot joining groups),
``_admin`` (admin cache), ``_context`` (shared state), ``_texts`` (every user-facing string), ``_errors``.
"""

from bot.telegram._app import build_application, run

__all__ = ["build_application", "run"]
