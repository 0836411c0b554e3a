"""The optional HTTP endpoint: /healthz (database and model answer) and /metrics (Prometheus text)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.console import ConsoleChat
from bot.health import HealthServer
from engine.service import StickerService
from tests.engine.test_service import make_pack


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_healthz_and_metrics(service: StickerService, tmp_path: Path) -> None:
    chat = ConsoleChat(service, chat_name="ops", out_dir=tmp_path / "out", cooldown=False)
    async with HealthServer(service, 0) as server, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{server.port}"
        async with http.get(f"{base}/healthz") as r:
            assert r.status == 200 and await r.text() == "ok\n"
        before = samples(await (await http.get(f"{base}/metrics")).text())

        await chat.handle(f"/addpack {make_pack(tmp_path / 'food')}")
        await chat.handle("alice: pizza tonight?")
        assert (await chat.handle("/sticker 3"))[0].startswith("Stickers for")
        await chat.handle("/sticker")  # answered again: no cooldown in this chat
        async with http.get(f"{base}/metrics") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
            after = samples(await r.text())

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("stickerpick_suggestions_total", platform="console", outcome="stickers") == 2
    assert grew("stickerpick_suggestion_seconds_count", platform="console") == 2
    assert grew("stickerpick_pack_imports_total", platform="local", outcome="ok") == 1
    assert grew("stickerpick_stickers_imported_total", platform="local") == 5
    assert (
        after[
            ("stickerpick_model_info", (("kind", service.ranker.name), ("version", service.ranker.version)))
        ]
        == 1
    )
    assert any(name == "process_resident_memory_bytes" for name, _ in after)


async def test_healthz_fails_when_the_database_is_gone(service: StickerService, migrated, tmp_path) -> None:
    db = Path(migrated.db_url.removeprefix("sqlite+aiosqlite:///"))
    if not db.is_file():  # PostgreSQL run: nothing to move away
        return
    async with HealthServer(service, 0) as server, aiohttp.ClientSession() as http:
        db.rename(db.with_suffix(".moved"))
        await service.db_engine.dispose()  # new connections find an empty file where the database was
        async with http.get(f"http://127.0.0.1:{server.port}/healthz") as r:
            body = await r.text()
            assert r.status == 503 and body.startswith("database: ") and body.count("\n") == 1, body
