"""What every bot process reads besides the engine's settings: its logs and its health/metrics endpoint.

The adapters extend these (``bot/telegram/settings.py``, ``bot/discord/settings.py``); the CLI reads them
once per command and checks every bot-side layer before any command runs (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.settings import Settings


class BotSettings(Settings):
    """The engine's settings plus the process's logging and its HTTP endpoint (`bot/health.py`)."""

    # An HTTP endpoint of the running bot with /healthz and /metrics (Prometheus); unset: none.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_listen: str = "127.0.0.1"

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # "json": one JSON object per log line (for log collectors).
    log_format: Literal["text", "json"] = "text"
