"""What every benchmark shares: the machine line, the command that made a table, writing the results, and the
engine settings a benchmark library runs under."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def machine(extra: str = "") -> str:
    line = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    return f"{line}, {extra}" if extra else line


def command(script: str) -> str:
    """The command line that ran ``script`` (its path relative to the repository), for the results."""
    return "python " + " ".join([str(Path(script).resolve().relative_to(REPO)), *sys.argv[1:]])


def write(out: Path, stem: str, md: str, payload: dict[str, Any]) -> None:
    """``<out>/<stem>.md`` (the table) and ``<out>/<stem>.json`` (the raw numbers); the table is printed too."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(md)
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=2))
    print(md)


def settings(home: Path, model_dir: Path, **extra: Any) -> Any:
    """Engine settings for a benchmark library: no default packs, no cooldown (unless ``extra`` sets one), big
    packs allowed."""
    from engine.settings import Settings

    fields: dict[str, Any] = {"default_packs": [], "max_pack_stickers": 100_000, "sticker_cooldown_s": 0}
    return Settings(_env_file=None, home=home, model_dir=model_dir, **{**fields, **extra})
