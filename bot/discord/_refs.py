"""Discord objects → the engine's identities.

Each text channel and each thread is its own chat (its own history, cooldown and logging switch); a server
is one more chat that only holds the packs every channel of that server ranks (``suggest(packs_from=...)``).
"""

from __future__ import annotations

import discord

from engine.service import ChatRef, UserRef

PLATFORM = "discord"

# Channels whose messages are recorded and where /sticker answers: text channels and their threads (forum
# posts are threads too). Voice-channel text chats are left out: their conversations are usually elsewhere.
CONVERSATION_CHANNELS: tuple[type, ...] = (discord.TextChannel, discord.Thread)


def channel_chat(channel: discord.abc.Snowflake) -> ChatRef:
    name = getattr(channel, "name", None)
    guild = getattr(channel, "guild", None)
    title = f"#{name} ({guild.name})" if name and guild is not None else None
    return ChatRef(PLATFORM, str(channel.id), title)


def guild_chat(guild: discord.Guild) -> ChatRef:
    return ChatRef(PLATFORM, f"guild-{guild.id}", guild.name)


def user_ref(user: discord.abc.User) -> UserRef:
    return UserRef(PLATFORM, str(user.id), user.display_name)
