"""Alembic migrations: the only way the schema changes. ``run_upgrade``/``run_downgrade`` drive them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def run_upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def run_downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    """For callers already inside an event loop (env.py runs its own loop, so use a thread)."""
    await asyncio.to_thread(run_upgrade, url, revision)
