"""The Telegram adapter (python-telegram-bot v22): a thin layer translating updates into engine service calls.

Private modules, one concern each: ``_app`` (Application, handlers, polling/webhook), ``_history`` (recording
group messages), ``_sticker`` (`/sticker` and its buttons), ``_inline`` (inline mode), ``_packs`` (adding and
removing packs), ``_privacy`` (`/logging`, `/forget`), ``_help``, ``_membership`` (the bot joining groups),
``_admin`` (admin cache), ``_context`` (shared state), ``_texts`` (every user-facing string), ``_errors``.
"""

from typing import TYPE_CHECKING

__all__ = ["build_application", "run"]

if TYPE_CHECKING:
    from bot.telegram._app import build_application, run

# Loaded on first use, so that the CLI can read ``bot.telegram.settings`` before every command without loading
# the platform library.


def __getattr__(name: str) -> object:
    if name in __all__:
        from bot.telegram import _app

        return getattr(_app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
