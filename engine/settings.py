"""All configuration, read once from the environment and a `.env` file (documented in `.env.example`).

The `.env` file is `./.env` in the working directory, or the file `STICKERPICK_ENV_FILE` names; the
environment wins over it. Nothing below the composition root reads ``os.environ``: build one
:class:`Settings` (:func:`load_settings` turns a bad value into a :class:`SettingsError`) and pass it down.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

REPO_ROOT = Path(__file__).resolve().parent.parent
# Running from a checkout (the repository's models/, vendor/, var/), or installed from the wheel, whose
# default model and default pack ship inside the package (scripts/build_wheel.sh puts them in engine/assets).
CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file()
ASSETS_DIR = Path(__file__).resolve().parent / "assets"


def _default_home() -> Path:
    if CHECKOUT:
        return REPO_ROOT / "var"
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "stickerpick"


def _shipped(relative: str) -> Path:
    """A file shipped with stickerpick: the checkout's, else the installed package's copy."""
    in_checkout = REPO_ROOT / relative
    return in_checkout if CHECKOUT or not (ASSETS_DIR / relative).exists() else ASSETS_DIR / relative


ENV_FILE_VAR = "STICKERPICK_ENV_FILE"
ENV_PREFIX = "STICKERPICK_"


class SettingsError(ValueError):
    """Bad configuration: one line per offending setting, named as the operator writes it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # `NAME=` (as in .env.example) means "not set": the default, not an empty string or path.
        env_ignore_empty=True,
    )

    def __init__(self, **values: Any) -> None:
        if "_env_file" not in values:  # tests pass _env_file=None; everyone else may choose the file
            chosen = os.environ.get(ENV_FILE_VAR)
            if chosen:
                if not Path(chosen).is_file():
                    raise SettingsError(f"{ENV_FILE_VAR}: no such file: {chosen}")
                values["_env_file"] = chosen
        super().__init__(**values)

    # Where the database file (SQLite default), the sticker media store and built artefacts live.
    # Default: var/ in a checkout, else $XDG_DATA_HOME/stickerpick (~/.local/share/stickerpick).
    home: Path = Field(default_factory=_default_home)
    # DATABASE_URL (no prefix) wins; default: SQLite file in `home`.
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    # Ranker: "auto" = trained PBR model dir if present, else the text baseline.
    ranker: Literal["auto", "pbr", "text-baseline"] = "auto"
    model_dir: Path | None = None
    baseline_model_dir: Path = Field(
        default_factory=lambda: (
            REPO_ROOT / "models" / "baseline-minilm" if CHECKOUT else _default_home() / "baseline-minilm"
        )
    )

    # Dialogue history.
    history_turns: int = Field(default=8, ge=1, le=200)
    history_tokens: int = Field(default=128, ge=8, le=512)
    retention_messages: int = Field(default=500, ge=1)
    retention_days: int = Field(default=30, ge=1)
    max_message_chars: int = Field(default=4096, ge=1)

    # Packs every new chat starts with (the bundled default pack is imported by `stickerpick setup`).
    default_packs: list[str] = Field(default_factory=lambda: ["noto-emoji"])
    # Where `stickerpick setup` finds npm-installed emoji artwork and writes the default pack.
    vendor_dir: Path = Field(default=REPO_ROOT / "vendor" / "node_modules")

    # Suggestions.
    top_k: int = Field(default=5, ge=1, le=50)
    # Re-rank the dual encoder's best candidates with the model's matching head (PBR models only).
    rerank_top: int = Field(default=30, ge=0, le=500)
    max_k: int = Field(default=10, ge=1, le=50)
    sticker_cooldown_s: float = Field(default=3.0, ge=0)

    # Runtime bounds.
    # Messages that arrive together share one transaction (group commit), at most this many; 1: one each.
    ingest_batch: int = Field(default=512, ge=1)
    # Memory for the sticker matrices of recently active chats (chats with the same packs share one).
    matrix_cache_mb: float = Field(default=128.0, gt=0)
    # Chats and users whose database ids are remembered (saves a lookup per message).
    identity_cache: int = Field(default=100_000, ge=1)

    # Media decoding bounds (one decoder for every path).
    max_media_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    max_media_pixels: int = Field(default=4096 * 4096, ge=1)
    max_decompressed_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    decode_timeout_s: float = Field(default=10.0, gt=0)
    max_pack_stickers: int = Field(default=2000, ge=1)
    # What one pack import may cost (issue 14): bytes of sticker files read, and seconds; past either, the
    # remaining stickers are skipped and reported (running the import again resumes with them).
    max_pack_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    pack_import_budget_s: float = Field(default=1800.0, gt=0)
    # Read captions written on stickers with OCR at import (RapidOCR; ~0.1-1 s per sticker, once).
    ocr_captions: bool = False

    # Platform tokens: secrets, only ever from the environment; SecretStr keeps them out of reprs and logs.
    telegram_token: SecretStr | None = Field(default=None, validation_alias="TELEGRAM_BOT_TOKEN")
    discord_token: SecretStr | None = Field(default=None, validation_alias="DISCORD_BOT_TOKEN")

    # Telegram
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

    # Discord
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

    # Retraining
    # Re-ranking prior from the chat's own logged sends/picks: score + weight * log1p(n) / log1p(max n).
    usage_prior_weight: float = Field(default=0.0, ge=0)
    # Salt of the user-id hashes in `stickerpick data export` (never written out); unset: a random salt per
    # export (hashes then do not link across exports).
    export_salt: SecretStr | None = None
    # The newest fraction (by time) of the logged samples held back as the validation slice.
    retrain_val_fraction: float = Field(default=0.2, gt=0, lt=1)
    # The training config whose base datasets and validation sets a retrain reuses.
    retrain_config: Path = Field(default=REPO_ROOT / "configs" / "pbr-default.yaml")
    # Checkpoint of the serving model when the registry has none (e.g. var/runs/pbr-default/best.pt).
    retrain_base_checkpoint: Path | None = None
    retrain_epochs: int = Field(default=1, ge=1)
    retrain_log_weight: float = Field(default=2.0, gt=0)  # sampling weight of the chat logs vs base data
    retrain_lr_scale: float = Field(default=0.3, gt=0)  # fine-tuning learning rates = config's × this
    # Promote only if the candidate's R@1 (points) is at least the serving model's minus this, on the
    # held-back logs and on the mean of the standard validation sets.
    retrain_margin: float = Field(default=0.5, ge=0)
    retrain_min_samples: int = Field(default=20, ge=1)
    # How often a running bot looks at the registry's `current` pointer (0: never).
    model_check_s: float = Field(default=60.0, ge=0)

    # An HTTP endpoint of the running bot with /healthz and /metrics (Prometheus); unset: none.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_listen: str = "127.0.0.1"

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # "json": one JSON object per log line (for log collectors).
    log_format: Literal["text", "json"] = "text"

    @cached_property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.home / 'stickerpick.db'}"

    @property
    def media_dir(self) -> Path:
        return self.home / "media"

    @property
    def models_dir(self) -> Path:
        """The model registry: ``<home>/models/<version>/`` and the ``current`` pointer."""
        return self.home / "models"

    def registry_model_dir(self) -> Path | None:
        """The model directory the registry's ``current`` pointer names, if any."""
        pointer = self.models_dir / "current"
        try:
            version = pointer.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        model = self.models_dir / version / "model"
        return model if version and (model / "manifest.json").is_file() else None

    @property
    def default_model_dir(self) -> Path:
        return _shipped("models/default")

    @property
    def bundled_pack_dir(self) -> Path | None:
        """The default pack's pictures and pack.json as shipped in the wheel (no npm needed), if present."""
        pack = ASSETS_DIR / "packs" / "noto-emoji"
        return pack if (pack / "pack.json").is_file() else None

    def serving_model_dir(self) -> Path:
        """The model the bots serve: an explicit STICKERPICK_MODEL_DIR, else the model promoted in the registry
        (`stickerpick model promote`), else the shipped default PBR model when present, else the text
        baseline."""
        if self.model_dir is not None:
            return self.model_dir
        if self.ranker == "text-baseline":
            return self.baseline_model_dir
        promoted = self.registry_model_dir()  # a promoted model of the registry
        if promoted is not None:
            return promoted
        if self.ranker in ("auto", "pbr") and (self.default_model_dir / "manifest.json").is_file():
            return self.default_model_dir
        return self.baseline_model_dir


def env_name(field: str) -> str:
    """The environment variable that sets ``field`` (its alias, else the prefixed upper-case name)."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    return alias if isinstance(alias, str) else f"{ENV_PREFIX}{field.upper()}"


def describe_errors(exc: ValidationError) -> str:
    """One line per bad setting: ``STICKERPICK_TOP_K: Input should be ... (got 'x')``, no traceback. A
    secret's value is never repeated."""
    lines = []
    for error in exc.errors(include_url=False):
        field = str((error.get("loc") or ("?",))[0])
        got = error.get("input")
        shown = "" if got is None or isinstance(got, dict) or _is_secret(field) else f" (got {str(got)!r})"
        lines.append(f"{env_name(field)}: {error.get('msg', 'invalid value')}{shown}")
    return "\n".join(lines)


def _is_secret(field: str) -> bool:
    info = Settings.model_fields.get(field)
    return info is None or SecretStr in (info.annotation, *get_args(info.annotation))


def load_settings(**values: Any) -> Settings:
    """:class:`Settings`, with a bad value raised as a :class:`SettingsError` of one line per field."""
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None
    except PydanticSettingsError as exc:  # a list or dict setting whose value is not JSON
        match = re.search(r'field "(\w+)"', str(exc))
        name = env_name(match.group(1)) if match else "a setting"
        why = f": {exc.__cause__}" if exc.__cause__ is not None else ""
        raise SettingsError(f'{name}: expected JSON, e.g. [1, 2] or ["a", "b"]{why}') from None
