"""The optional HTTP endpoint of a running bot (STICKERPICK_METRICS_PORT): ``/healthz`` and ``/metrics``.

- ``GET /healthz``: 200 ``ok`` when the database answers a query and the model serves (it embeds a short
  dialogue), else 503 with what failed, one line each (for a load balancer or an orchestrator's probe).
- ``GET /metrics``: Prometheus text format: suggestions and their latency, pack imports, errors, the model
  version being served (``stickerpick_model_info``), process memory and CPU.

It runs on the bot's own event loop (aiohttp, which discord.py already brings), so the checks see exactly
what the bot sees. Bound to ``STICKERPICK_METRICS_LISTEN`` (127.0.0.1 by default).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text

from engine import metrics
from engine.service import StickerService

log = logging.getLogger(__name__)
CHECK_TIMEOUT_S = 5.0


class _ModelInfo(Collector):
    """``stickerpick_model_info{version, kind} 1``: read at scrape time, so a hot-swapped model shows."""

    def __init__(self, service: StickerService) -> None:
        self.service = service

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "stickerpick_model_info", "The model being served", labels=["version", "kind"]
        )
        ranker = self.service.ranker
        family.add_metric([ranker.version, ranker.name], 1)
        yield family


async def health_problems(service: StickerService) -> list[str]:
    """What keeps this process from answering /sticker right now (empty: healthy)."""
    problems = []
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), service.sessions() as session:
            await session.execute(
                text("SELECT version_num FROM alembic_version")
            )  # our schema, not just a file
    except Exception as exc:
        problems.append(f"database: {type(exc).__name__}: {exc}".splitlines()[0])
    try:
        ranker = service.ranker
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            vectors = await asyncio.to_thread(ranker.embed_dialogues, [ranker.dialogue_text(["ping"])])
        if vectors.shape[0] != 1:
            problems.append(f"model: {ranker.version} returned {vectors.shape[0]} vectors for 1 dialogue")
    except Exception as exc:
        problems.append(f"model: {type(exc).__name__}: {exc}".splitlines()[0])
    return problems


def make_app(service: StickerService) -> web.Application:
    collector = _ModelInfo(service)

    async def healthz(_request: web.Request) -> web.Response:
        problems = await health_problems(service)
        if problems:
            log.warning("health check failed: %s", "; ".join(problems))
            return web.Response(status=503, text="\n".join(problems) + "\n")
        return web.Response(text="ok\n")

    async def metrics_page(_request: web.Request) -> web.Response:
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def register(_app: web.Application) -> None:
        metrics.REGISTRY.register(collector)

    async def unregister(_app: web.Application) -> None:
        metrics.REGISTRY.unregister(collector)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    app.on_startup.append(register)
    app.on_cleanup.append(unregister)
    return app


class HealthServer:
    """Start with ``await start()``, stop with ``await stop()`` (or ``async with``); port 0 picks a free one."""

    def __init__(self, service: StickerService, port: int, host: str = "127.0.0.1") -> None:
        self.runner = web.AppRunner(make_app(service), access_log=None)
        self.host, self.port = host, port

    async def start(self) -> HealthServer:
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        server: Any = site._server  # the bound port, when 0 asked for any
        if self.port == 0 and server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        log.info("health and metrics on http://%s:%d/healthz and /metrics", self.host, self.port)
        return self

    async def stop(self) -> None:
        await self.runner.cleanup()

    async def __aenter__(self) -> HealthServer:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()
