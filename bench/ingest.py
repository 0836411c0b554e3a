"""Benchmark: message ingestion through the engine (``StickerService.record``) with many chats writing at once,
group commit (the default) side by side with one transaction per message, in the same run.

Run:  .venv/bin/python bench/ingest.py [--chats 1000] [--writers 256] [--seconds 20] [--database-url URL]
Each writer task plays a stream of messages into its share of the chats (20–200 characters, several users per
chat, history retention on as in production); ``record`` returns only once its message is committed. Results →
docs/bench/ingest.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import engine  # noqa: E402, F401  (first: it configures numpy's BLAS threads as the bots run them)
from bench import _common  # noqa: E402
from bench.text_tower import TURNS, _peak_rss_mb  # noqa: E402

USERS_PER_CHAT = 3


async def run_mode(
    url: str, home: Path, batch: int, chats: int, writers: int, seconds: float, model_dir: Path
) -> dict:
    from sqlalchemy import func, select

    from engine.db import Message
    from engine.service import ChatRef, UserRef, open_service
    from migrations import upgrade_async

    settings = _common.settings(home, model_dir, DATABASE_URL=url, ingest_batch=batch)
    await upgrade_async(settings.db_url)
    service = await open_service(settings)
    latencies: list[float] = []
    stop = 0.0
    done = 0

    async def writer(w: int) -> None:
        nonlocal done, stop
        rng = np.random.default_rng(w)
        mine = [ChatRef("bench", f"chat{c}", f"Chat {c}") for c in range(w, chats, writers)]
        i = 0
        while time.perf_counter() < stop:
            chat = mine[i % len(mine)]
            user = UserRef("bench", f"u{int(rng.integers(0, USERS_PER_CHAT))}-{chat.chat_id}", "Someone")
            text = TURNS[int(rng.integers(0, len(TURNS)))] * int(rng.integers(1, 4))
            t = time.perf_counter()
            await service.record(chat, user, text[:200], message_id=f"{w}-{i}")
            latencies.append(time.perf_counter() - t)
            done += 1
            i += 1

    try:
        # first sight of each chat and user (creates their rows) is not the sustained rate: done beforehand
        for c in range(chats):
            ref = ChatRef("bench", f"chat{c}", f"Chat {c}")
            for u in range(USERS_PER_CHAT):
                await service.record(ref, UserRef("bench", f"u{u}-{ref.chat_id}", "Someone"), "hello")
        stop = time.perf_counter() + seconds
        t0 = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        elapsed = time.perf_counter() - t0
        async with service.sessions() as session:
            kept = (await session.execute(select(func.count()).select_from(Message))).scalar_one()
        lat = np.asarray(latencies) * 1000
        return {
            "mode": "group commit" if batch > 1 else "one transaction per message",
            "ingest_batch": batch,
            "messages": done,
            "seconds": elapsed,
            "messages_per_s": done / elapsed,
            "transactions": service.writer.batches,
            "mean_batch": service.writer.rows / max(1, service.writer.batches),
            "ack_p50_ms": float(np.percentile(lat, 50)),
            "ack_p99_ms": float(np.percentile(lat, 99)),
            "rows_in_db": int(kept),
            "peak_rss_mb": _peak_rss_mb(),
        }
    finally:
        await service.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chats", type=int, default=1000)
    ap.add_argument("--writers", type=int, default=256, help="concurrent tasks (chats writing at once)")
    ap.add_argument("--seconds", type=float, default=20.0, help="sustained load per mode")
    ap.add_argument("--database-url", default=None, help="default: a fresh SQLite file per mode")
    ap.add_argument("--model-dir", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (512, 1):
            home = Path(tmp) / f"home-{batch}"
            url = args.database_url or f"sqlite+aiosqlite:///{home / 'stickerpick.db'}"
            rows.append(
                asyncio.run(
                    run_mode(url, home, batch, args.chats, args.writers, args.seconds, args.model_dir)
                )
            )
            print(rows[-1], flush=True)
    backend = (args.database_url or "sqlite").split(":")[0].split("+")[0]
    machine, cmd = _common.machine(), _common.command(__file__)
    lines = [
        f"### Message ingestion ({backend}, {args.chats:,} chats, {args.writers} writing at once)",
        "",
        f"Machine: {machine}. Command: `{cmd}`. Each mode runs {args.seconds:.0f} s of sustained load; "
        "`record` returns only after its message is committed.",
        "",
        "| mode | messages/s | messages | transactions | mean rows per commit | ack p50 ms | ack p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['messages_per_s']:,.0f} | {r['messages']:,} | {r['transactions']:,} | "
            f"{r['mean_batch']:.1f} | {r['ack_p50_ms']:.1f} | {r['ack_p99_ms']:.1f} |"
        )
    ratio = rows[0]["messages_per_s"] / rows[1]["messages_per_s"]
    lines += ["", f"Group commit vs one transaction per message: {ratio:.1f}× the throughput."]
    md = "\n".join(lines) + "\n"
    _common.write(args.out, f"ingest-{backend}", md, {"machine": machine, "command": cmd, "rows": rows})


if __name__ == "__main__":
    main()
