"""Prometheus metrics of a serving process (exposed by ``bot/health.py`` when STICKERPICK_METRICS_PORT is set).

One registry per process, not prometheus-client's global default, so that nothing imported by accident ends
up in what the bot exports. Counting is cheap (a lock and an add) and always on; only serving them needs the
port.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.process_collector import ProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # resident memory, CPU seconds, open files of the bot process

SUGGESTIONS = Counter(
    "stickerpick_suggestions",
    "/sticker requests answered, by platform and outcome (stickers, or a message: cooldown, no packs, ...)",
    ["platform", "outcome"],
    registry=REGISTRY,
)
SUGGESTION_SECONDS = Histogram(
    "stickerpick_suggestion_seconds",
    "Time to answer a /sticker request inside the engine (ranking and database), by platform",
    ["platform"],
    buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
IMPORTS = Counter(
    "stickerpick_pack_imports",
    "Pack imports (files or platform sets), by platform and outcome (ok, failed)",
    ["platform", "outcome"],
    registry=REGISTRY,
)
STICKERS_IMPORTED = Counter(
    "stickerpick_stickers_imported", "Stickers new to the library", ["platform"], registry=REGISTRY
)
ERRORS = Counter(
    "stickerpick_errors",
    "Failures answered with an apology (handler errors), and failed engine requests, by platform and where",
    ["platform", "where"],
    registry=REGISTRY,
)
