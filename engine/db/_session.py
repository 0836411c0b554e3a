"""Engine creation (SQLite: WAL + foreign keys), sessions, and the schema-version check."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

from sqlalchemy import event, text
from sqlalchemy.engine import CursorResult, Result, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from engine.errors import SchemaOutOfDate as SchemaOutOfDate  # with the other typed errors; re-exported

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    # Deleted rows (/forget, /logging off, retention) are overwritten with zeros, not left in free pages, so
    # a user's deleted messages cannot be read back from the file; with a checkpoint (`checkpoint_truncate`)
    # no copy of them stays on disk
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


# Loggers that write SQL statements with their parameters (and result rows) at INFO/DEBUG: message text.
# Logs are kept and shipped with less care than the database, so no log line at any level carries message
# text: these never log below WARNING, whatever the root level; an operator who really wants them sets
# their level explicitly (a level other than NOTSET).
STATEMENT_LOGGERS = ("sqlalchemy.engine", "sqlalchemy.pool", "sqlalchemy.orm", "aiosqlite", "asyncpg")


def quiet_statement_loggers() -> None:
    for name in STATEMENT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; for SQLite the file's folder is created and every connection gets the pragmas.
    SQL parameters (message text) never appear in errors or logs: ``hide_parameters``."""
    quiet_statement_loggers()
    kwargs.setdefault("hide_parameters", True)
    if is_sqlite(url):
        db_path = make_url(url).database
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


async def checkpoint_truncate(engine: AsyncEngine) -> bool:
    """SQLite: copy the write-ahead log into the database file and truncate it to zero bytes, so what was
    just deleted leaves no copy in the WAL. True when the WAL was emptied (False: another process was reading
    an older snapshot; its next checkpoint finishes it). A no-op True elsewhere."""
    if engine.dialect.name != "sqlite":
        return True
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        row = (await auto.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")).first()
    return row is None or int(row[0]) == 0


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def head_revision() -> str:
    """The newest revision in ``migrations/versions``."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic revisions found in {MIGRATIONS_DIR}")
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        try:
            row = (await conn.execute(text("SELECT version_num FROM alembic_version"))).first()
        except Exception:  # no alembic_version table: never migrated
            return None
        return row[0] if row else None


async def check_schema(engine: AsyncEngine) -> None:
    """Refuse to run on a database that is missing or behind (:class:`SchemaOutOfDate` carries both
    revisions; the caller says how to upgrade it)."""
    current = await current_revision(engine)
    head = head_revision()
    if current != head:
        raise SchemaOutOfDate(engine.url.render_as_string(hide_password=True), current, head)


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE/DELETE matched (``Session.execute`` is typed as a plain Result; DML gives a
    CursorResult, which has the count)."""
    return int(cast("CursorResult[Any]", result).rowcount or 0)
