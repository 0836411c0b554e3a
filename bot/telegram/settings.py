"""The Telegram adapter's settings (`stickerpick telegram`), on top of the engine's and the bot's.

Importing this module loads no Telegram library: the CLI checks these settings before every command.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from bot.settings import BotSettings


class TelegramSettings(BotSettings):
    """Everything `stickerpick telegram` reads: the engine's settings, the bot's, and Telegram's own."""

    # The token: a secret, only ever from the environment; SecretStr keeps it out of reprs and logs.
    telegram_token: SecretStr | None = Field(default=None, validation_alias="TELEGRAM_BOT_TOKEN")
    # A self-hosted Bot API server (e.g. "http://localhost:8081/bot"); default: Telegram's own.
    telegram_base_url: str | None = None
    # Webhook mode when set: the public HTTPS URL Telegram posts updates to (else long polling).
    telegram_webhook_url: str | None = None
    telegram_webhook_listen: str = "127.0.0.1"
    telegram_webhook_port: int = Field(default=8443, ge=1, le=65535)
    # Checked against the X-Telegram-Bot-Api-Secret-Token header of every webhook call.
    telegram_webhook_secret: SecretStr | None = None
    # Inline queries carry no chat: use the chat the user last wrote in within this many seconds.
    telegram_inline_window_s: float = Field(default=900.0, ge=0)
    # How long a chat's administrator list (getChatAdministrators) is trusted.
    telegram_admin_cache_s: float = Field(default=300.0, ge=0)
