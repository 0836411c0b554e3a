from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.settings import Settings
from tests.auxil.models import tiny_text_model_dir

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason=f"needs {SHARED_DATA}")
    for item in items:
        if "data" in item.keywords and not SHARED_DATA.is_dir():
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_text_model_dir(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def settings(tmp_path: Path, tiny_model_dir: Path) -> Settings:
    return Settings(
        _env_file=None,
        home=tmp_path / "home",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'home' / 'test.db'}",
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
