from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import inspect

from engine.db import Base, SchemaOutOfDate, check_schema, create_engine, head_revision
from engine.settings import Settings
from migrations import run_downgrade, run_upgrade

TABLES = {
    "chats",
    "users",
    "messages",
    "packs",
    "stickers",
    "chat_packs",
    "sticker_embeddings",
    "suggestions",
    "suggestion_items",
    "feedback",
    "training_samples",
}


def _tables(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    return {r[0] for r in rows} - {"alembic_version", "sqlite_sequence"}


def test_upgrade_then_downgrade_on_empty_sqlite(tmp_path):
    db = tmp_path / "empty.db"
    url = f"sqlite+aiosqlite:///{db}"
    run_upgrade(url)
    assert _tables(db) == TABLES
    run_downgrade(url, "base")
    assert _tables(db) == set()
    run_upgrade(url)  # and up again
    assert _tables(db) == TABLES


def test_migrations_match_the_models(tmp_path):
    """The models and the revisions describe the same schema (autogenerate finds nothing to add)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine as create_sync_engine

    db = tmp_path / "m.db"
    run_upgrade(f"sqlite+aiosqlite:///{db}")
    engine = create_sync_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert set(inspect(conn).get_table_names()) >= TABLES
    assert diff == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    db = tmp_path / "wal.db"
    run_upgrade(f"sqlite+aiosqlite:///{db}")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_foreign_keys_are_enforced(migrated: Settings):
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    engine = create_engine(migrated.db_url)
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            with pytest.raises(IntegrityError):
                await conn.execute(
                    text("INSERT INTO messages (chat_id, text, created_at) VALUES (999, 'x', '2026-01-01')")
                )
    finally:
        await engine.dispose()


async def test_app_refuses_an_out_of_date_schema(settings: Settings):
    engine = create_engine(settings.db_url)
    try:
        with pytest.raises(SchemaOutOfDate) as refused:  # the facts; the CLI and the bots word the command
            await check_schema(engine)
        assert (refused.value.current, refused.value.head) == (None, head_revision())
        await asyncio.to_thread(run_upgrade, settings.db_url)
        await check_schema(engine)
        await asyncio.to_thread(run_downgrade, settings.db_url, "base")
        with pytest.raises(SchemaOutOfDate, match=head_revision()):
            await check_schema(engine)
    finally:
        await engine.dispose()


async def test_upgrade_and_downgrade_on_the_configured_database(settings: Settings):
    """The same revisions on whichever database the suite runs on (SQLite, or PostgreSQL with STICKERPICK_TEST_PG)."""

    async def tables() -> set[str]:
        engine = create_engine(settings.db_url)
        try:
            async with engine.connect() as conn:
                names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        finally:
            await engine.dispose()
        return names - {"alembic_version", "sqlite_sequence"}

    await asyncio.to_thread(run_upgrade, settings.db_url)
    assert await tables() == TABLES
    await asyncio.to_thread(run_downgrade, settings.db_url, "base")
    assert await tables() == set()
