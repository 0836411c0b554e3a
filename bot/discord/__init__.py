"""The Discord adapter (discord.py 2.x): `/sticker` and pack management as slash commands in a cog, the
conversation of each text channel and thread recorded by a listener, all through the engine's service.

Layout: ``_bot`` (bot classes, intents, command sync, :func:`run`), ``_cog`` (slash commands), ``_views``
(posting a sticker and the requester's picker), ``_history`` (message listener, retention), ``_packs`` (server
stickers, uploads, pack names), ``_refs`` (Discord objects → engine identities), ``_errors`` and ``_texts``.
"""

from typing import TYPE_CHECKING

__all__ = ["StickerBot", "build_bot", "run"]

if TYPE_CHECKING:
    from bot.discord._bot import StickerBot, build_bot, run

# Loaded on first use, so that the CLI can read ``bot.discord.settings`` before every command without loading
# the platform library.


def __getattr__(name: str) -> object:
    if name in __all__:
        from bot.discord import _bot

        return getattr(_bot, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
