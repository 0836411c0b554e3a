from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from engine.settings import Settings
from tests.auxil.models import tiny_text_model_dir

# The public corpora (`--data-root`, docs/FORMAT.md); tests marked `data` skip without them.
SHARED_DATA = Path(
    os.environ.get("STICKERPICK_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason=f"needs {SHARED_DATA}")
    for item in items:
        if "data" in item.keywords and not SHARED_DATA.is_dir():
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_text_model_dir(tmp_path_factory.mktemp("models") / "tiny")


# STICKERPICK_TEST_PG=postgresql+asyncpg://user@host:port/db runs every database test on a fresh PostgreSQL
# database instead of a SQLite file (`eval "$(bash scripts/pg.sh start)"` starts a local server).
TEST_PG = os.environ.get("STICKERPICK_TEST_PG")


def pg_execute(sql: str, server_url: str | None = None) -> None:
    """Run one statement on the PostgreSQL server (``STICKERPICK_TEST_PG`` unless ``server_url`` is given)
    outside any transaction: CREATE and DROP DATABASE."""
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(server_url or TEST_PG or "")

    async def run() -> None:
        conn = await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, password=url.password, database=url.database
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    if not TEST_PG:
        yield f"sqlite+aiosqlite:///{tmp_path / 'home' / 'test.db'}"
        return
    from sqlalchemy.engine import make_url

    name = f"t_{uuid.uuid4().hex[:16]}"
    pg_execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(TEST_PG).set(database=name).render_as_string(hide_password=False)
    finally:
        pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(tmp_path: Path, tiny_model_dir: Path, database_url: str) -> Settings:
    return Settings(
        _env_file=None,
        home=tmp_path / "home",
        DATABASE_URL=database_url,
        model_dir=tiny_model_dir,
        default_packs=[],
        sticker_cooldown_s=0,
    )


@pytest.fixture
def migrated(settings: Settings) -> Settings:
    from migrations import run_upgrade

    run_upgrade(settings.db_url)
    return settings


@pytest.fixture
async def service(migrated: Settings) -> AsyncIterator:
    from engine.service import open_service

    svc = await open_service(migrated)
    try:
        yield svc
    finally:
        await svc.close()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """CLI commands configure logging (bot/logs.py) for the whole process: undo it after each test."""
    import logging

    from bot.logs import DEVELOPER_LOGGERS, OUR_LOGGERS

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    verbosity = os.environ.get("TRANSFORMERS_VERBOSITY")
    yield
    if verbosity is None:
        os.environ.pop("TRANSFORMERS_VERBOSITY", None)
    else:
        os.environ["TRANSFORMERS_VERBOSITY"] = verbosity
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name in (*OUR_LOGGERS, *DEVELOPER_LOGGERS, "py.warnings"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    logging.captureWarnings(False)
