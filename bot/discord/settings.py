"""The Discord adapter's settings (`stickerpick discord`), on top of the engine's and the bot's.

Importing this module loads no Discord library: the CLI checks these settings before every command.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from bot.settings import BotSettings


class DiscordSettings(BotSettings):
    """Everything `stickerpick discord` reads: the engine's settings, the bot's, and Discord's own."""

    # The token: a secret, only ever from the environment; SecretStr keeps it out of reprs and logs.
    discord_token: SecretStr | None = Field(default=None, validation_alias="DISCORD_BOT_TOKEN")
    # Run on discord.AutoShardedClient (large deployments; Discord requires shards past 2,500 servers).
    discord_sharded: bool = False
    # With sharding: how many shards (default: the number Discord recommends).
    discord_shard_count: int | None = Field(default=None, ge=1)
    # Sync the slash commands with Discord at start-up (turn off where several processes run one bot).
    discord_sync_commands: bool = True
    # Development: sync the commands to these servers only (instant), e.g. [123456789012345678].
    discord_guild_ids: list[int] = Field(default_factory=list)
    # Ask for the privileged message-content intent (also switch it on in the Developer Portal). Without it
    # the bot reads only messages that mention it, and /sticker works from its `about:` text.
    discord_message_content: bool = True
