"""The Discord adapter (discord.py 2.x): `/sticker` and pack management as slash commands in a cog, the
conversation of each text channel and thread recorded by a listener, all through the engine's service.

Layout: ``_bot`` (bot classes, intents, command sync, :func:`run`), ``_cog`` (slash commands), ``_views``
(posting a sticker and the requester's picker), ``_history`` (message listener, retention), ``_packs`` (server
stickers, uploads, pack names), ``_refs`` (Discord objects → engine identities), ``_errors`` and ``_texts``.
"""

from bot.discord._bot import StickerBot, build_bot, run

__all__ = ["StickerBot", "build_bot", "run"]
