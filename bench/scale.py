"""Benchmark: a real deployment's scale on SQLite: a library of 1,000,000 stickers, 10,000 chats, a Zipf mix
of active chats asking `/sticker`.

Run:  .venv/bin/python bench/scale.py [--stickers 1000000] [--chats 10000] [--requests 2000]
1. The library: N stickers in ready packs of 100-300, each with its embedding stored for the served model's
   version (``StickerEmbedding``), inserted straight into the database with SQLAlchemy core bulk inserts (not
   through the importer). The embeddings are synthetic random unit vectors of the model's embedding dim:
   ranking cost does not depend on their values, and embedding a million pictures on 2 cores is not possible.
   Reported: the database's size per million stickers and the build time (not a quality figure).
2. C chats, each enabling a random set of packs totalling 300-3,000 stickers.
3. The real service (``open_service`` on the model and the database, no cooldown), in a fresh process per
   mode: R requests from a Zipf mix of chats (a = 1.2 over chat ranks), each chat with a short conversation
   recorded first. Reported: p50 / p99 latency over all requests, first requests of a chat (cold: its sticker
   matrix is built) included; resident memory at the end (now and peak, /proc/self/status). Beside it, its
   naive alternative: no matrix cache (every request builds its chat's matrix).
4. The cost of a cold chat, the service's matrix build from stored embeddings (``MatrixCache.get`` with
   nothing held in memory), at 300, 1,000 and 3,000 stickers, beside the naive alternative: reading every
   embedding row of the chat as one ORM object each.
The database is read from the OS page cache (it was just written): "cold" is the process's caches, not the disk.
Results → docs/bench/scale.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import engine  # noqa: E402, F401  (first: it configures numpy's BLAS threads as the bots run them)
from bench import _common  # noqa: E402
from bench.memory import _rss_mb  # noqa: E402
from bench.text_tower import TURNS  # noqa: E402

PROBE_SIZES = (300, 1_000, 3_000)  # stickers in the chats whose cold build is timed
RSS_TARGET_MB = 600.0
COLD_TARGET_MS = 30.0  # at 3,000 stickers
ZIPF_A = 1.2
TURNS_PER_CHAT = 4  # messages recorded in each active chat before it asks
NAIVE_CACHE_MB = 1e-9  # the setting must be > 0; the cache is also emptied before every request in that mode
_CHUNK = 20_000  # rows per executemany
_FLOOR = (
    "SELECT e.sticker_id, e.vector FROM sticker_embeddings e JOIN stickers s ON s.id = e.sticker_id "
    "JOIN chat_packs cp ON cp.pack_id = s.pack_id JOIN packs p ON p.id = s.pack_id "
    "WHERE cp.chat_id = ? AND cp.enabled AND p.status = 'ready' AND e.model_version = ?"
)
_EMOJI = "😀😂🥲😍😎😭😡👍🙏🎉🔥💀🤔😴🥳😱🤯😇🙃😬"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _Progress:
    """A printed line every 10 %."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.next, self.t = label, total, 0.1, time.perf_counter()

    def __call__(self, done: int) -> None:
        if self.total and done / self.total >= self.next - 1e-9:
            _log(f"  {self.label}: {done:,}/{self.total:,} ({time.perf_counter() - self.t:.0f} s)")
            while done / self.total >= self.next - 1e-9:
                self.next += 0.1


# ---------------------------------------------------------------------------------------------- the library
def _pack_sizes(n: int, rng: np.random.Generator) -> list[int]:
    sizes: list[int] = []
    left = n
    while left > 0:
        size = min(left, int(rng.integers(100, 301)))
        sizes.append(size)
        left -= size
    return sizes


def _pick_packs(sizes: np.ndarray, target: int, rng: np.random.Generator, exact: bool) -> list[int]:
    """Pack indexes totalling about ``target`` stickers (``exact``: exactly, where a pack of the remainder's
    size is there to finish it)."""
    order = rng.permutation(len(sizes))
    chosen, total = [], 0
    for p in order:
        if exact and total + 300 >= target:
            break
        if not exact and total >= target:
            break
        chosen.append(int(p))
        total += int(sizes[p])
    if exact and total < target:
        used = set(chosen)
        fits = [int(p) for p in np.flatnonzero(sizes == target - total) if int(p) not in used]
        if fits:
            chosen.append(fits[0])
        else:  # finish with the closest that does not overshoot, else the smallest
            rest = [int(p) for p in order if int(p) not in used]
            under = [p for p in rest if sizes[p] <= target - total]
            chosen.append(max(under, key=lambda p: sizes[p]) if under else min(rest, key=lambda p: sizes[p]))
    elif not exact and total > 3_000 and len(chosen) > 1:
        chosen.pop()
    return chosen


def build(db_file: Path, n: int, chats: int, version: str, dim: int, seed: int) -> dict[str, Any]:
    """The library, the chats and their packs, straight into a fresh (migrated) database."""
    from sqlalchemy import create_engine, event, insert

    from engine.db import Chat, ChatPack, Pack, Sticker, StickerEmbedding

    rng = np.random.default_rng(seed)
    eng = create_engine(f"sqlite:///{db_file}")

    @event.listens_for(eng, "connect")
    def _pragmas(conn: Any, _record: Any) -> None:
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=OFF")  # a benchmark's build: nothing to lose on a crash
        cur.close()

    now = datetime.now(UTC)
    t0 = time.perf_counter()
    sizes = np.asarray(_pack_sizes(n, rng))
    with eng.begin() as conn:
        conn.execute(
            insert(Pack),
            [
                {
                    "id": p + 1,
                    "platform": "local",
                    "name": f"scale-{p:06d}",
                    "title": f"Scale pack {p}",
                    "source": f"bench/scale/{p:06d}",
                    "status": "ready",
                    "created_at": now,
                }
                for p in range(len(sizes))
            ],
        )
    pack_of = np.repeat(np.arange(1, len(sizes) + 1), sizes)
    position = np.concatenate([np.arange(s) for s in sizes])
    progress = _Progress("stickers + embeddings", n)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        vec = rng.standard_normal((stop - start, dim), dtype=np.float32)
        vec /= np.linalg.norm(vec, axis=1, keepdims=True)
        vec = vec.astype("<f4")
        stickers, embeddings = [], []
        for j, i in enumerate(range(start, stop)):
            sid = i + 1
            stickers.append(
                {
                    "id": sid,
                    "pack_id": int(pack_of[i]),
                    "platform_sticker_id": f"s{int(position[i]):05d}.png",
                    "platform_file_id": None,  # a local pack: sent by its picture
                    "emoji": _EMOJI[i % len(_EMOJI)],
                    "tags": [],
                    "caption": None,
                    "media_sha256": hashlib.sha256(f"scale-{sid}".encode()).hexdigest(),
                    "kind": "static",
                    "source_format": "png",
                    "width": 512,
                    "height": 512,
                    "position": int(position[i]),
                    "created_at": now,
                }
            )
            embeddings.append(
                {
                    "sticker_id": sid,
                    "model_version": version,
                    "dim": dim,
                    "vector": vec[j].tobytes(),
                    "created_at": now,
                }
            )
        with eng.begin() as conn:
            conn.execute(insert(Sticker), stickers)
            conn.execute(insert(StickerEmbedding), embeddings)
        progress(stop)
    library_s = time.perf_counter() - t0

    # the chats, plus one probe chat per size whose cold build is timed (never in the Zipf mix)
    t1 = time.perf_counter()
    chat_rows, links, totals = [], [], []
    names = [f"chat{c}" for c in range(chats)] + [f"probe{s}" for s in PROBE_SIZES]
    for c, name in enumerate(names):
        probe = name.startswith("probe")
        target = int(name[5:]) if probe else int(rng.integers(300, 3_001))
        packs = _pick_packs(sizes, target, rng, exact=probe)
        totals.append(int(sizes[packs].sum()))
        chat_rows.append(
            {
                "id": c + 1,
                "platform": "bench",
                "platform_chat_id": name,
                "title": None,
                "logging_enabled": False,
                "packs_version": len(packs),  # each enable bumps it
                "created_at": now,
            }
        )
        links += [
            {"chat_id": c + 1, "pack_id": p + 1, "enabled": True, "added_by": None, "added_at": now}
            for p in packs
        ]
    with eng.begin() as conn:
        conn.execute(insert(Chat), chat_rows)
        for start in range(0, len(links), _CHUNK):
            conn.execute(insert(ChatPack), links[start : start + _CHUNK])
    with eng.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    eng.dispose()
    chats_s = time.perf_counter() - t1
    size = sum(f.stat().st_size for f in db_file.parent.glob(db_file.name + "*"))
    chat_totals = totals[:chats]
    return {
        "stickers": n,
        "packs": len(sizes),
        "chats": chats,
        "chat_packs": len(links),
        "chat_stickers_min": int(min(chat_totals)),
        "chat_stickers_median": float(np.median(chat_totals)),
        "chat_stickers_max": int(max(chat_totals)),
        "probe_stickers": dict(zip(map(str, PROBE_SIZES), totals[chats:], strict=True)),
        "db_mb": size / 2**20,
        "db_mb_per_million_stickers": size / 2**20 / (n / 1e6),
        "build_library_s": library_s,
        "build_chats_s": chats_s,
    }


# ---------------------------------------------------------------------------------------------- serving
async def _open(home: Path, model_dir: Path, threads: int, **extra: Any) -> Any:
    from engine.service import open_service

    return await open_service(_common.settings(home, model_dir, **extra), threads=threads)


async def _chat_row(service: Any, name: str) -> tuple[int, int]:
    from sqlalchemy import select

    from engine.db import Chat

    async with service.sessions() as session:
        row = (
            await session.execute(
                select(Chat.id, Chat.packs_version).where(
                    Chat.platform == "bench", Chat.platform_chat_id == name
                )
            )
        ).one()
    return int(row[0]), int(row[1])


async def _converse(service: Any, names: list[str]) -> None:
    from engine.service import ChatRef, UserRef

    progress = _Progress("conversations", len(names))
    for n, name in enumerate(names, 1):
        ref = ChatRef("bench", name)
        for j in range(TURNS_PER_CHAT):
            await service.record(ref, UserRef("bench", str(j % 3)), TURNS[(n + j) % len(TURNS)])
        progress(n)


def _ms(values: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else None


async def serve(
    home: Path, model_dir: Path, chats: int, requests: int, seed: int, naive: bool, threads: int
) -> dict[str, Any]:
    """The Zipf mix, as shipped or (``naive``) with no matrix cache."""
    from engine.service import ChatRef

    start_rss = _rss_mb()[0]
    extra = {"matrix_cache_mb": NAIVE_CACHE_MB} if naive else {}
    service = await _open(home, model_dir, threads, **extra)
    try:
        rng = np.random.default_rng(seed)  # the same mix in both modes
        ranks = rng.zipf(ZIPF_A, size=requests * 4)
        ranks = ranks[ranks <= chats][:requests] - 1
        while len(ranks) < requests:  # (a = 1.2 has a long tail: draw again)
            more = rng.zipf(ZIPF_A, size=requests)
            ranks = np.concatenate([ranks, more[more <= chats] - 1])[:requests]
        chat_of_rank = rng.permutation(chats)
        mix = [f"chat{int(chat_of_rank[r])}" for r in ranks]
        active = list(dict.fromkeys(mix))
        _log(f"  {len(active):,} distinct chats among {requests:,} requests")
        await _converse(service, [*active, "probe300"])
        # warm the towers on a chat outside the mix, then start with nothing held
        for _ in range(3):
            assert (await service.suggest(ChatRef("bench", "probe300"), 5)).items
        service.matrices.clear()
        service.embeddings.clear()
        opened_rss = _rss_mb()[0]

        builds: list[float] = []
        real_get = service.matrices.get

        async def timed_get(*args: Any, **kwargs: Any) -> Any:  # the cache's build path, as requests call it
            t = time.perf_counter()
            out = await real_get(*args, **kwargs)
            builds.append(time.perf_counter() - t)
            return out

        service.matrices.get = timed_get
        lat, cold, warm = [], [], []
        progress = _Progress("requests", requests)
        t_run = time.perf_counter()
        for i, name in enumerate(mix, 1):
            if naive:
                service.matrices.clear()
            before = len(builds)
            t = time.perf_counter()
            result = await service.suggest(ChatRef("bench", name), 5)
            dt = time.perf_counter() - t
            assert len(result.items) == 5, result.reason
            lat.append(dt)
            (cold if len(builds) > before else warm).append(dt)
            progress(i)
        run_s = time.perf_counter() - t_run
        rss, peak = _rss_mb()
        vectors = service.embeddings.vectors(service.ranker.version)
        return {
            "mode": "no matrix cache" if naive else "as shipped",
            "matrix_cache_mb": service.settings.matrix_cache_mb,
            "requests": requests,
            "distinct_chats": len(active),
            "top_chat_share": max(mix.count(c) for c in active[:50]) / requests,
            "cold_requests": len(cold),
            "p50_ms": _ms(lat, 50),
            "p99_ms": _ms(lat, 99),
            "mean_ms": float(np.mean(lat) * 1000),
            "cold_p50_ms": _ms(cold, 50),
            "cold_p99_ms": _ms(cold, 99),
            "warm_p50_ms": _ms(warm, 50),
            "warm_p99_ms": _ms(warm, 99),
            "matrix_build_p50_ms": _ms(builds, 50),
            "matrix_build_p99_ms": _ms(builds, 99),
            "requests_per_s": requests / run_s,
            "python_start_mb": start_rss,
            "after_open_mb": opened_rss,
            "rss_mb": rss,
            "peak_rss_mb": peak,
            "matrices_held": len(service.matrices),
            "matrix_mb": service.matrices.nbytes / 2**20,
            "vectors_held": len(vectors),
            "vectors_mb": sum(v.nbytes for v in vectors.values()) / 2**20,
        }
    finally:
        await service.close()


async def _naive_matrix(service: Any, chat_id: int, version: str) -> tuple[np.ndarray, np.ndarray]:
    """What a straightforward implementation does: every embedding row of the chat as one ORM object."""
    from sqlalchemy import select

    from engine.db import ChatPack, Pack, Sticker, StickerEmbedding

    async with service.sessions() as session:  # a fresh session: no identity map carried over
        rows = (
            await session.execute(
                select(StickerEmbedding)
                .join(Sticker, Sticker.id == StickerEmbedding.sticker_id)
                .join(ChatPack, ChatPack.pack_id == Sticker.pack_id)
                .join(Pack, Pack.id == Sticker.pack_id)
                .where(
                    ChatPack.chat_id == chat_id,
                    ChatPack.enabled,
                    Pack.status == "ready",
                    StickerEmbedding.model_version == version,
                )
                .order_by(StickerEmbedding.sticker_id)
            )
        ).scalars()
        rows = list(rows)
    ids = np.asarray([r.sticker_id for r in rows], dtype=np.int64)
    return ids, np.stack([np.frombuffer(r.vector, dtype="<f4") for r in rows]).astype(np.float32)


async def cold(home: Path, model_dir: Path, reps: int, threads: int) -> dict[str, Any]:
    """A cold chat's matrix build at each probe size: the service's path (and its parts) against the naive
    one, interleaved; and the first /sticker of a cold chat minus a warm one."""
    from engine.service import ChatRef
    from engine.service._embeddings import _chat_stickers

    service = await _open(home, model_dir, threads)
    ranker = service.ranker
    floor_db = sqlite3.connect(f"file:{service.database_file}?mode=ro", uri=True)
    rows = []
    try:
        await _converse(service, [f"probe{s}" for s in PROBE_SIZES])
        for _ in range(3):
            assert (await service.suggest(ChatRef("bench", "probe300"), 5)).items
        for size in PROBE_SIZES:
            chat_id, packs_version = await _chat_row(service, f"probe{size}")
            ref = ChatRef("bench", f"probe{size}")
            t: dict[str, list[float]] = {
                k: []
                for k in ("service", "ids", "embeddings", "stack", "memory", "naive", "floor", "suggest")
            }
            n = 0
            for rep in range(reps):
                for path in ("service", "naive") if rep % 2 == 0 else ("naive", "service"):
                    service.matrices.clear()
                    service.embeddings.clear()
                    s = time.perf_counter()
                    if path == "service":
                        async with service.sessions() as session:
                            mat = await service.matrices.get(session, chat_id, packs_version, ranker)
                        ids, matrix = mat.ids, mat.matrix
                    else:
                        ids, matrix = await _naive_matrix(service, chat_id, ranker.version)
                    t[path].append(time.perf_counter() - s)
                    n = len(ids)
                    if rep == 0:
                        assert matrix.shape[0] == n and matrix.dtype == np.float32
                # the service's build in its parts: the chat's sticker ids, their stored vectors, the stack
                service.matrices.clear()
                service.embeddings.clear()
                s = time.perf_counter()
                async with service.sessions() as session:
                    id_list = (await _chat_stickers(session, chat_id, None))[0]
                t["ids"].append(time.perf_counter() - s)
                s = time.perf_counter()
                vectors = await service.embeddings.ensure(ranker, id_list)
                t["embeddings"].append(time.perf_counter() - s)
                s = time.perf_counter()
                np.stack([vectors[i] for i in id_list]).astype(np.float32)
                t["stack"].append(time.perf_counter() - s)
                # the matrix alone gone (its vectors still in memory): what an evicted chat pays
                service.matrices.clear()
                s = time.perf_counter()
                async with service.sessions() as session:
                    await service.matrices.get(session, chat_id, packs_version, ranker)
                t["memory"].append(time.perf_counter() - s)
                # the floor: the same rows in one statement through the sqlite3 module, one bytes join
                s = time.perf_counter()
                raw = sorted(floor_db.execute(_FLOOR, (chat_id, ranker.version)).fetchall())
                np.frombuffer(b"".join(r[1] for r in raw), dtype="<f4").reshape(len(raw), -1)
                np.fromiter((r[0] for r in raw), dtype=np.int64, count=len(raw))
                t["floor"].append(time.perf_counter() - s)
                assert len(raw) == len(id_list)
                # end to end: a cold chat's first /sticker minus a warm one
                service.matrices.clear()
                service.embeddings.clear()
                s = time.perf_counter()
                assert (await service.suggest(ref, 5)).items
                first = time.perf_counter() - s
                s = time.perf_counter()
                assert (await service.suggest(ref, 5)).items
                t["suggest"].append(first - (time.perf_counter() - s))
            row = {"stickers": n}
            for k, v in t.items():
                row[f"{k}_p50_ms"] = _ms(v, 50)
                row[f"{k}_p90_ms"] = _ms(v, 90)
            rows.append(row)
            _log(f"  cold chat, {n:,} stickers: {row}")
        return {"reps": reps, "rows": rows}
    finally:
        floor_db.close()
        await service.close()


# ---------------------------------------------------------------------------------------------- the report
def _f(x: float | None, fmt: str = ".1f") -> str:
    return "–" if x is None else format(x, fmt)


def _load(args: argparse.Namespace) -> str:
    """The 1-minute load average at the start and the end: other work on the machine shows in the latencies."""
    return f"load average {args.load[0]:.1f} at the start, {args.load[1]:.1f} at the end"


def _table(manifest: dict, lib: dict, zipf: list[dict], cold_rows: dict, args: argparse.Namespace) -> str:
    machine, cmd = _common.machine(_load(args)), _common.command(__file__)
    shipped = zipf[0]
    rss_ok = (
        "met" if shipped["rss_mb"] <= RSS_TARGET_MB and shipped["peak_rss_mb"] <= RSS_TARGET_MB else "missed"
    )
    c3 = next((r for r in cold_rows["rows"] if abs(r["stickers"] - 3_000) <= 300), None)
    cold_ok = "–" if c3 is None else ("met" if c3["service_p50_ms"] <= COLD_TARGET_MS else "missed")
    lines = [
        f"### A deployment's scale on SQLite ({manifest['version']}, {lib['stickers']:,} stickers, "
        f"{lib['chats']:,} chats)",
        "",
        f"Machine: {machine}. Command: `{cmd}`. Embeddings are synthetic random unit vectors "
        f"({manifest['embedding_dim']} float32 each, stored for the served model's version): ranking cost does "
        "not depend on their values. The database file was just written, so it is read from the OS page "
        "cache: *cold* means nothing held in the process.",
        "",
        "#### The library",
        "",
        "| stickers | packs | chats | chat ↔ pack rows | stickers per chat (min / median / max) | database MB "
        "| MB per million stickers | build s (library + chats) |",
        "|---:|---:|---:|---:|---|---:|---:|---:|",
        f"| {lib['stickers']:,} | {lib['packs']:,} | {lib['chats']:,} | {lib['chat_packs']:,} | "
        f"{lib['chat_stickers_min']:,} / {lib['chat_stickers_median']:,.0f} / {lib['chat_stickers_max']:,} | "
        f"{lib['db_mb']:,.0f} | {lib['db_mb_per_million_stickers']:,.0f} | "
        f"{lib['build_library_s']:.0f} + {lib['build_chats_s']:.0f} |",
        "",
        f"Build: SQLAlchemy core `executemany`, {_CHUNK:,} rows a statement, `synchronous=OFF` (a build "
        "time, not a quality figure).",
        "",
        f"#### `/sticker` from a Zipf mix of chats (a = {ZIPF_A}, {shipped['requests']:,} requests, "
        f"{shipped['distinct_chats']:,} distinct chats)",
        "",
        f"Each chat has {TURNS_PER_CHAT} messages recorded first; k = 5, no cooldown; one request at a time. "
        "p50 / p99 over all requests, a chat's first request (its matrix built from stored embeddings) "
        "included. *no matrix cache*: the naive alternative, the cache emptied before every request so every "
        f"request builds its chat's matrix. Targets: RSS ≤ {RSS_TARGET_MB:.0f} MB (as shipped: **{rss_ok}**).",
        "",
        "| mode | p50 ms | p99 ms | requests building a matrix | their p50 / p99 ms | the others' p50 / p99 ms "
        "| requests/s | RSS MB (target ≤ 600) | peak RSS MB | matrices held (MB) | vectors held (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in zipf:
        lines.append(
            f"| {r['mode']} ({r['matrix_cache_mb']:.0f} MB) | {_f(r['p50_ms'])} | {_f(r['p99_ms'])} | "
            f"{r['cold_requests']:,} | {_f(r['cold_p50_ms'])} / {_f(r['cold_p99_ms'])} | "
            f"{_f(r['warm_p50_ms'])} / {_f(r['warm_p99_ms'])} | {r['requests_per_s']:.0f} | "
            f"{r['rss_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['matrices_held']:,} ({r['matrix_mb']:.0f}) | "
            f"{r['vectors_held']:,} ({r['vectors_mb']:.0f}) |"
        )
    lines += [
        "",
        f"Of the as-shipped RSS ({shipped['rss_mb']:.0f} MB; {shipped['after_open_mb']:.0f} MB after "
        f"opening the service): the matrix cache's {shipped['matrices_held']:,} matrices "
        f"({shipped['matrix_mb']:.0f} MB, of {shipped['distinct_chats']:,} chats that asked), and the "
        f"embedding cache's {shipped['vectors_held']:,} vectors ({shipped['vectors_mb']:.0f} MB of floats, one "
        "numpy array each): the most recently used, within `STICKERPICK_EMBEDDING_CACHE_MB`.",
    ]
    lines += [
        "",
        f"#### A cold chat: its sticker matrix built from stored embeddings (median of {cold_rows['reps']}, "
        "p90 in brackets)",
        "",
        "*service*: `MatrixCache.get` with nothing in memory (the chat's sticker ids and their stored vectors "
        "in one statement, then the stack); *of which*: the earlier path's parts, timed apart (the ids, then "
        "the vectors by `IN` chunks of 900, then the stack); *vectors in memory*: the service with the "
        "vectors still held (an evicted chat's rebuild: the one statement still reads them); *naive*: every embedding row of the chat as one ORM "
        "object, then the stack; *floor*: the same rows in one statement through the `sqlite3` module (no "
        "ORDER BY: sorted in Python, as the service does), the vectors as one `bytes` join (what the database "
        "itself costs); *first /sticker − warm*: the "
        "end-to-end cross-check. "
        f"Target: ≤ {COLD_TARGET_MS:.0f} ms at 3,000 stickers (service: **{cold_ok}**).",
        "",
        "| stickers | service ms | of which: ids ms | stored vectors ms | stack ms | vectors in memory ms "
        "| naive (ORM rows) ms | naive / service | floor: one sqlite3 statement ms | first /sticker − warm ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in cold_rows["rows"]:

        def c(k: str, row: dict = r) -> str:
            return f"{_f(row[f'{k}_p50_ms'])} ({_f(row[f'{k}_p90_ms'])})"

        lines.append(
            f"| {r['stickers']:,} | {c('service')} | {c('ids')} | {c('embeddings')} | {c('stack')} | "
            f"{c('memory')} | {c('naive')} | {r['naive_p50_ms'] / r['service_p50_ms']:.1f}× | "
            f"{c('floor')} | {c('suggest')} |"
        )
    return "\n".join(lines) + "\n"


def _child(args: argparse.Namespace, home: Path, role: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--role", role, "--home", str(home), "--model-dir", str(args.model_dir)]
    cmd += ["--chats", str(args.chats), "--requests", str(args.requests), "--seed", str(args.seed)]
    cmd += ["--reps", str(args.reps), "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--stickers", type=int, default=1_000_000)
    ap.add_argument("--chats", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=2_000)
    ap.add_argument("--reps", type=int, default=15, help="timings per cold-chat size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: as the bots run)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/stickerpick-scale"), help="the database's folder")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench")
    ap.add_argument("--role", choices=["main", "serve", "serve-naive", "cold"], default="main")
    ap.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role != "main":
        if args.role == "cold":
            row = asyncio.run(cold(args.home, args.model_dir, args.reps, args.threads))
        else:
            naive = args.role == "serve-naive"
            row = asyncio.run(
                serve(args.home, args.model_dir, args.chats, args.requests, args.seed, naive, args.threads)
            )
        print(json.dumps(row))
        return

    from migrations import upgrade_async

    args.load = [os.getloadavg()[0]]
    manifest = json.loads((args.model_dir / "manifest.json").read_text())
    home = args.work / "home"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    settings = _common.settings(home, args.model_dir)
    try:
        asyncio.run(upgrade_async(settings.db_url))
        db_file = home / "stickerpick.db"
        _log(f"building {args.stickers:,} stickers, {args.chats:,} chats in {db_file}…")
        lib = build(
            db_file, args.stickers, args.chats, manifest["version"], manifest["embedding_dim"], args.seed
        )
        _log(f"  {lib}")
        zipf = []
        for role in ("serve", "serve-naive"):  # each in a fresh process: its own resident size
            _log(f"{role}: {args.requests:,} requests…")
            zipf.append(_child(args, home, role))
            _log(f"  {zipf[-1]}")
        _log("cold chats…")
        cold_rows = _child(args, home, "cold")
        args.load.append(os.getloadavg()[0])
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    md = _table(manifest, lib, zipf, cold_rows, args)
    payload = {
        "machine": _common.machine(_load(args)),
        "command": _common.command(__file__),
        "model": manifest["version"],
        "targets": {"rss_mb": RSS_TARGET_MB, "cold_chat_ms_at_3000": COLD_TARGET_MS},
        "library": lib,
        "zipf": zipf,
        "cold_chat": cold_rows,
    }
    _common.write(args.out, "scale", md, payload)


if __name__ == "__main__":
    main()
