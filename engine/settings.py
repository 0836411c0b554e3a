"""The engine's configuration, read once from the environment and a `.env` file (documented in `.env.example`).

The `.env` file is `./.env` in the working directory, or the file `STICKERPICK_ENV_FILE` names; the
environment wins over it. Nothing below the composition root reads ``os.environ``: build one
:class:`Settings` (:meth:`Settings.load` turns a bad value into a :class:`SettingsError`) and pass it down.

Each layer above the engine owns its own settings and extends these (``bot/settings.py``,
``bot/telegram/settings.py``, ``bot/discord/settings.py``, ``retraining/settings.py``): the same file, the
same prefix, the same one-line errors, and the engine never sees a setting it does not use.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Self, get_args

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
    """The engine's settings: storage, the model, dialogue history, suggestions and the runtime bounds."""

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

    @classmethod
    def load(cls, **values: Any) -> Self:
        """These settings, with a bad value raised as a :class:`SettingsError` of one line per field."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SettingsError(describe_errors(exc, cls)) from None
        except PydanticSettingsError as exc:  # a list or dict setting whose value is not JSON
            match = re.search(r'field "(\w+)"', str(exc))
            name = env_name(match.group(1), cls) if match else "a setting"
            why = f": {exc.__cause__}" if exc.__cause__ is not None else ""
            raise SettingsError(f'{name}: expected JSON, e.g. [1, 2] or ["a", "b"]{why}') from None

    # Where the database file (SQLite default), the sticker media store and built artefacts live.
    # Default: var/ in a checkout, else $XDG_DATA_HOME/stickerpick/ (~/.local/share/stickerpick/).
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

    # Packs every new chat starts with (the bundled default pack is imported by the CLI's `setup`).
    default_packs: list[str] = Field(default_factory=lambda: ["noto-emoji"])
    # Where the CLI's `setup` finds npm-installed emoji artwork and writes the default pack.
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
    # Memory for sticker vectors read from the database, which chats' matrices are built from (the most
    # recently used; the rest stay in the database).
    embedding_cache_mb: float = Field(default=64.0, ge=1)
    # Chats and users whose database ids are remembered (saves a lookup per message).
    identity_cache: int = Field(default=100_000, ge=1)

    # Media decoding bounds (one decoder for every path).
    max_media_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    max_media_pixels: int = Field(default=4096 * 4096, ge=1)
    max_decompressed_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    decode_timeout_s: float = Field(default=10.0, gt=0)
    max_pack_stickers: int = Field(default=2000, ge=1)
    # What one pack import may cost, so a huge or hostile pack cannot hold the process for hours or fill the
    # disk: bytes of sticker files read, and seconds; past either, the remaining stickers are skipped and
    # reported (running the import again resumes with them).
    max_pack_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    pack_import_budget_s: float = Field(default=1800.0, gt=0)
    # Read captions written on stickers with OCR at import (RapidOCR; ~0.1-1 s per sticker, once).
    ocr_captions: bool = False

    # Model and registry (read by the serving engine; retraining's own settings: retraining/settings.py).
    # Re-ranking prior from the chat's own logged sends/picks: score + weight * log1p(n) / log1p(max n).
    usage_prior_weight: float = Field(default=0.0, ge=0)
    # How often a running bot looks at the registry's `current` pointer (0: never).
    model_check_s: float = Field(default=60.0, ge=0)
    # A model with a second dialogue tower reads other languages with it (engine/language.py). False: every
    # dialogue goes to the English tower, and neither the language detector (93 MB) nor that tower (~250 MB)
    # is ever loaded; for bots whose chats all write English.
    multilingual: bool = True

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
        from engine.registry import ModelRegistry  # one reader of the pointer; the registry needs no settings

        return ModelRegistry(self.models_dir).current_model_dir()

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
        (the CLI's `model promote`), else the shipped default PBR model when present, else the text
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


def env_name(field: str, settings_class: type[Settings] = Settings) -> str:
    """The environment variable that sets ``field`` of ``settings_class`` (its alias, else the prefixed
    upper-case name)."""
    info = settings_class.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    return alias if isinstance(alias, str) else f"{ENV_PREFIX}{field.upper()}"


def describe_errors(exc: ValidationError, settings_class: type[Settings] = Settings) -> str:
    """One line per bad setting: ``STICKERPICK_TOP_K: Input should be ... (got 'x')``, no traceback. A
    secret's value is never repeated."""
    lines = []
    for error in exc.errors(include_url=False):
        field = str((error.get("loc") or ("?",))[0])
        got = error.get("input")
        secret = _is_secret(field, settings_class)
        shown = "" if got is None or isinstance(got, dict) or secret else f" (got {str(got)!r})"
        lines.append(f"{env_name(field, settings_class)}: {error.get('msg', 'invalid value')}{shown}")
    return "\n".join(lines)


def _is_secret(field: str, settings_class: type[Settings]) -> bool:
    info = settings_class.model_fields.get(field)
    return info is None or SecretStr in (info.annotation, *get_args(info.annotation))


def load_settings(**values: Any) -> Settings:
    """The engine's :class:`Settings`, with a bad value raised as a :class:`SettingsError` of one line per
    field (:meth:`Settings.load` for another layer's)."""
    return Settings.load(**values)
