"""Benchmark: `stickerpick telegram` worker processes in webhook mode sharing one database, under a sustained,
bounded, mixed load of ordinary group messages and `/sticker` commands on loopback.

Run:  eval "$(bash scripts/pg.sh start)"
      .venv/bin/python bench/webhook_workers.py [--seconds 60] [--chats 20] [--rate 40] [--sticker-every 8]
          [--database-url postgresql+asyncpg://...] [--no-sqlite] [--out docs/bench]

This process plays Telegram the way the webhook-workers test does (tests/bot/telegram/test_webhook_workers.py):
a FakeBotApiServer on loopback answers the workers' Bot API calls, and updates are POSTed to the workers'
webhook ports with the secret header, round robin, as a load balancer would. The load is open loop at a fixed
offered rate (bounded: at most --max-inflight POSTs outstanding; beyond that an update is shed and counted);
every --sticker-every-th update is a `/sticker`, the chats taken in turn so the per-chat cooldown (production's,
3 s) rarely refuses. A `/sticker`'s latency runs from starting its POST to the sendSticker call that answers it
arriving at the fake Bot API. In the same run: two workers on PostgreSQL, one worker on PostgreSQL under the same
offered load, and (unless --no-sqlite) two workers on one shared SQLite file. Each mode gets a fresh database
(a new PostgreSQL database on the --database-url server, dropped afterwards). Results →
docs/bench/webhook_workers.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

import engine  # noqa: E402, F401  (first: it configures numpy's BLAS threads as the bots run them)
from bench import _common  # noqa: E402
from bench.text_tower import TURNS  # noqa: E402
from tests.auxil.telegram import ALICE, BOB, CAROL, FakeBotApi, FakeBotApiServer  # noqa: E402
from tests.bot.telegram.conftest import add_food_pack  # noqa: E402
from tests.bot.telegram.test_webhook_workers import (  # noqa: E402
    SECRET,
    START_TIMEOUT_S,
    Worker,
    _free_port,
    _stop,
    _wait_listening,
    _worker_env,
)
from tests.conftest import pg_execute  # noqa: E402

USERS = (ALICE, BOB, CAROL)
COOLDOWN_PREFIX = "Easy there"  # texts.COOLDOWN, in English (the fake users send no language_code)
ERROR_LINE = re.compile(r" (ERROR|CRITICAL) ")


class TimedApi(FakeBotApi):
    """The fake Bot API, noting when each reply to a user's message (sendSticker/sendMessage) arrives."""

    def __init__(self) -> None:
        super().__init__()
        # (chat id, replied-to message id) → [(arrival perf_counter, method, text, origin)]
        self.replies: dict[tuple[int, int], list[tuple[float, str, str, str]]] = defaultdict(list)

    async def call(
        self, method: str, params: dict[str, Any], uploads: dict[str, bytes], origin: str = ""
    ) -> tuple[int, bytes]:
        now = time.perf_counter()
        if method in ("sendSticker", "sendMessage"):
            reply = params.get("reply_parameters")
            if isinstance(reply, dict) and "message_id" in reply:
                key = (int(params["chat_id"]), int(reply["message_id"]))
                self.replies[key].append((now, method, str(params.get("text", "")), origin))
        return await super().call(method, params, uploads, origin)


def _start(name: str, settings: Any, server: FakeBotApiServer, workdir: Path, cooldown: float) -> Worker:
    """The test's worker start, with production's /sticker cooldown instead of none."""
    port = _free_port()
    env = _worker_env(settings, server.base_url(name), port)
    env["STICKERPICK_STICKER_COOLDOWN_S"] = str(cooldown)
    log = workdir / f"worker-{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from bot.cli import main; main()", "telegram"],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Worker(name, port, proc, log)


def _chats(n: int) -> list[dict[str, Any]]:
    return [{"id": -1001000100000 - i, "type": "supergroup", "title": f"Bench chat {i}"} for i in range(n)]


async def _message_count(service: Any) -> int:
    from sqlalchemy import func, select

    from engine.db import Message

    async with service.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(Message))).scalar_one())


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else None


async def run_mode(
    label: str, n_workers: int, url: str, home: Path, rate: float, args: argparse.Namespace
) -> dict:
    from engine.service import ChatRef, open_service
    from migrations import upgrade_async

    settings = _common.settings(home, args.model_dir, DATABASE_URL=url, sticker_cooldown_s=args.cooldown)
    await upgrade_async(settings.db_url)
    chats = _chats(args.chats)
    service = await open_service(settings)
    api = TimedApi()
    for chat in chats:
        await add_food_pack(service, home / "food", ChatRef("telegram", str(chat["id"]), chat["title"]))
        api.add_chat(chat, admins=[ALICE])
    workdir = home / "workers"
    workdir.mkdir(parents=True, exist_ok=True)
    http_errors: list[str] = []
    acks: list[float] = []  # webhook POST → its HTTP answer, s
    statuses: dict[int, int] = defaultdict(int)
    commands: dict[tuple[int, int], float] = {}  # (chat, message id) → POST start
    sent = {"messages": 0, "stickers": 0, "shed": 0}
    workers: list[Worker] = []
    try:
        async with FakeBotApiServer(api) as server:
            try:
                workers = [
                    _start(name, settings, server, workdir, args.cooldown) for name in "abcdefgh"[:n_workers]
                ]
                t_start = time.perf_counter()
                deadline = time.monotonic() + START_TIMEOUT_S
                for w in workers:
                    await _wait_listening(w, deadline)
                startup_s = time.perf_counter() - t_start
                limits = httpx.Limits(max_connections=args.max_inflight, max_keepalive_connections=64)
                async with httpx.AsyncClient(timeout=httpx.Timeout(10.0), limits=limits) as http:
                    # Round robin per kind, so that /sticker (every Nth update) does not always land on
                    # the same worker.
                    rr: dict[str, itertools.count] = defaultdict(itertools.count)

                    async def post(update: dict[str, Any], kind: str, record: bool = True) -> None:
                        w = workers[next(rr[kind]) % len(workers)]
                        t = time.perf_counter()
                        try:
                            r = await http.post(
                                w.url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
                            )
                            if record:
                                statuses[r.status_code] += 1
                                acks.append(time.perf_counter() - t)
                            if r.status_code != 200:
                                http_errors.append(f"{w.name}: HTTP {r.status_code}")
                        except httpx.HTTPError as exc:
                            http_errors.append(f"{w.name}: {type(exc).__name__} {exc}")

                    # Warm-up, off the clock: every chat and user is seen once and each chat answers one
                    # /sticker (the workers' first rankings); then the cooldown runs out.
                    warm = []
                    for chat in chats:
                        for user in USERS:
                            await post(api.message(chat, user, "hello there, anyone hungry?"), "m", False)
                        command = api.message(chat, BOB, "/sticker")
                        warm.append((chat["id"], command["message"]["message_id"]))
                        await post(command, "s", False)
                    end = time.monotonic() + 60
                    while time.monotonic() < end and not all(api.replies.get(k) for k in warm):
                        await asyncio.sleep(0.1)
                    warm_missing = sum(1 for k in warm if not api.replies.get(k))
                    await asyncio.sleep(args.cooldown + 0.5)
                    await asyncio.sleep(1.0)  # the warm-up's writes committed
                    before = await _message_count(service)

                    rng = np.random.default_rng(0)
                    total = int(rate * args.seconds)
                    inflight: set[asyncio.Task] = set()
                    sticker_chat = itertools.cycle(chats)
                    t0 = time.perf_counter()
                    for i in range(total):
                        delay = t0 + i / rate - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        if len(inflight) >= args.max_inflight:
                            sent["shed"] += 1
                            continue
                        user = USERS[int(rng.integers(0, len(USERS)))]
                        if i % args.sticker_every == args.sticker_every - 1:
                            chat = next(sticker_chat)
                            update = api.message(chat, user, "/sticker")
                            commands[(chat["id"], update["message"]["message_id"])] = time.perf_counter()
                            sent["stickers"] += 1
                            kind = "s"
                        else:
                            chat = chats[int(rng.integers(0, len(chats)))]
                            text = TURNS[int(rng.integers(0, len(TURNS)))]
                            update = api.message(chat, user, text)
                            sent["messages"] += 1
                            kind = "m"
                        task = asyncio.create_task(post(update, kind))
                        inflight.add(task)
                        task.add_done_callback(inflight.discard)
                    t_offered = time.perf_counter() - t0
                    if inflight:
                        await asyncio.gather(*inflight)
                    t_acked = time.perf_counter() - t0
                    # Stragglers: wait for every /sticker's answer, at most --reply-timeout past its POST.
                    while any(not api.replies.get(k) for k in commands):
                        if time.perf_counter() > max(commands.values()) + args.reply_timeout:
                            break
                        await asyncio.sleep(0.1)
                    await asyncio.sleep(1.0)  # late duplicates, and the last messages committed
            finally:
                await asyncio.to_thread(_stop, workers)
        recorded = await _message_count(service) - before
    finally:
        await service.close()

    latencies, refusals, other, missing, late, duplicates = [], 0, [], 0, 0, 0
    last_reply = 0.0
    for key, t_post in commands.items():
        got = api.replies.get(key, [])
        if not got:
            missing += 1
            continue
        if len(got) > 1:
            duplicates += len(got) - 1
        t_arrive, method, text, _ = got[0]
        if t_arrive - t_post > args.reply_timeout:
            late += 1
            continue
        last_reply = max(last_reply, t_arrive - t0)
        if method == "sendSticker":
            latencies.append(t_arrive - t_post)
        elif text.startswith(COOLDOWN_PREFIX):
            refusals += 1
        else:
            other.append(text[:120])
    origins: dict[str, int] = defaultdict(int)
    for key in commands:
        for *_, origin in api.replies.get(key, [])[:1]:
            origins[origin] += 1
    log_errors, tracebacks, samples = 0, 0, []
    for w in workers:
        text = w.log.read_text(errors="replace")
        tracebacks += text.count("Traceback")
        bad = [line for line in text.splitlines() if ERROR_LINE.search(line)]
        log_errors += len(bad)
        samples += [f"{w.name}: {line[:240]}" for line in bad[:3]]
    exits = {w.name: w.proc.returncode for w in workers}
    window = max(t_acked, last_reply)
    handled = statuses.get(200, 0)
    errors = (
        len(http_errors)
        + tracebacks
        + log_errors
        + missing
        + late
        + duplicates
        + len(other)
        + sum(1 for c in exits.values() if c != 0)
    )
    return {
        "mode": label,
        "workers": n_workers,
        "backend": url.split(":")[0].split("+")[0],
        "startup_s": startup_s,
        "warmup_unanswered": warm_missing,
        "offered_updates": total,
        "offered_rate": rate,
        "offered_seconds": t_offered,
        "sent_messages": sent["messages"],
        "sent_stickers": sent["stickers"],
        "shed": sent["shed"],
        "http_200": handled,
        "window_s": window,
        "updates_per_s": handled / window,
        "sticker_replies": len(latencies),
        "sticker_replies_per_s": len(latencies) / window,
        "sticker_p50_ms": _pct(latencies, 50),
        "sticker_p99_ms": _pct(latencies, 99),
        "sticker_max_ms": _pct(latencies, 100),
        "ack_p50_ms": _pct(acks, 50),
        "ack_p99_ms": _pct(acks, 99),
        "cooldown_refusals": refusals,
        "messages_recorded": recorded,
        "answered_by": dict(origins),
        "errors": errors,
        "error_detail": {
            "http": len(http_errors),
            "http_samples": http_errors[:5],
            "worker_tracebacks": tracebacks,
            "worker_error_lines": log_errors,
            "worker_error_samples": samples,
            "no_reply": missing,
            "reply_after_timeout": late,
            "duplicate_replies": duplicates,
            "other_replies": len(other),
            "other_samples": other[:5],
            "exit_codes": exits,
        },
    }


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "—" if value is None else format(value, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("STICKERPICK_TEST_PG"))
    ap.add_argument("--seconds", type=float, default=60.0, help="sustained load per mode")
    ap.add_argument("--chats", type=int, default=20, help="group chats")
    ap.add_argument(
        "--rate",
        type=float,
        nargs="+",
        default=[40.0],
        help="offered updates per second, all workers together; several: every mode at each",
    )
    ap.add_argument("--sticker-every", type=int, default=8, help="one update in N is /sticker")
    ap.add_argument(
        "--cooldown", type=float, default=3.0, help="per-chat /sticker cooldown, s (production's)"
    )
    ap.add_argument(
        "--reply-timeout", type=float, default=10.0, help="a /sticker unanswered after this is an error"
    )
    ap.add_argument("--max-inflight", type=int, default=256, help="outstanding POSTs before updates are shed")
    ap.add_argument("--no-sqlite", action="store_true", help="skip two workers on a shared SQLite file")
    ap.add_argument("--model-dir", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench")
    args = ap.parse_args()
    if not args.database_url or not args.database_url.startswith("postgresql"):
        ap.error(
            "needs PostgreSQL: pass --database-url postgresql+asyncpg://... or set STICKERPICK_TEST_PG "
            '(eval "$(bash scripts/pg.sh start)")'
        )
    from sqlalchemy.engine import make_url

    modes = [("2 workers, PostgreSQL", 2, "pg"), ("1 worker, PostgreSQL", 1, "pg")]
    if not args.no_sqlite:
        modes.append(("2 workers, shared SQLite file", 2, "sqlite"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (rate, (label, n, backend)) in enumerate(itertools.product(args.rate, modes)):
            home = Path(tmp) / f"home-{i}"
            home.mkdir()
            name = ""
            if backend == "pg":
                name = f"bench_workers_{uuid.uuid4().hex[:12]}"
                pg_execute(f'CREATE DATABASE "{name}"', args.database_url)
                url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
            else:
                url = f"sqlite+aiosqlite:///{home / 'stickerpick.db'}"
            try:
                rows.append(asyncio.run(run_mode(label, n, url, home, rate, args)))
            finally:
                if name:
                    pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', args.database_url)
            print({k: v for k, v in rows[-1].items() if k != "error_detail"}, flush=True)
            print(rows[-1]["error_detail"], flush=True)
    machine, cmd = _common.machine(), _common.command(__file__)
    lines = [
        "### Webhook workers sharing one database (mixed load on loopback)",
        "",
        f"Machine: {machine}. Command: `{cmd}`. Each mode: {args.seconds:.0f} s of load at the offered rate "
        f"(one update in {args.sticker_every} a `/sticker`) over {args.chats} group chats, round robin over "
        f"the workers; `/sticker` cooldown {args.cooldown:g} s per chat; model `{args.model_dir.name}`.",
        "",
        "| mode | offered updates/s | updates/s handled | `/sticker` replies/s | `/sticker` p50 ms | p99 ms | "
        "max ms | webhook ack p99 ms | stickers / `/sticker` sent | cooldown refusals | shed | errors | "
        "messages recorded / sent |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['offered_rate']:g} | {r['updates_per_s']:.1f} | "
            f"{r['sticker_replies_per_s']:.2f} | {_fmt(r['sticker_p50_ms'])} | {_fmt(r['sticker_p99_ms'])} | "
            f"{_fmt(r['sticker_max_ms'])} | {_fmt(r['ack_p99_ms'])} | {r['sticker_replies']:,} / "
            f"{r['sent_stickers']:,} | {r['cooldown_refusals']} | {r['shed']:,} | {r['errors']} | "
            f"{r['messages_recorded']:,} / {r['sent_messages']:,} |"
        )
    lines += [
        "",
        "Notes: the machine has 2 CPU cores shared by the workers, PostgreSQL, this load generator and the fake "
        "Bot API, and another benchmark ran beside this one: the figures are relative (modes against each "
        "other in one run), not capacity. Updates/s handled: webhook POSTs answered 200 per second of the "
        "window (from the first update to the last answer). Latency: from starting a `/sticker`'s POST to the "
        "sendSticker call answering it arriving at the fake Bot API. Errors: HTTP errors from the webhooks, "
        "ERROR lines and tracebacks in the workers' logs, `/sticker` with no answer within "
        f"{args.reply_timeout:g} s, duplicate answers, answers that are neither a sticker nor the cooldown, "
        "and unclean worker exits; cooldown refusals are correct answers and counted apart. "
        "Details per mode in webhook_workers.json.",
    ]
    md = "\n".join(lines) + "\n"
    payload = {"machine": machine, "command": cmd, "args": {k: str(v) for k, v in vars(args).items()}}
    payload["args"].pop("database_url")
    payload["rows"] = rows
    _common.write(args.out, "webhook_workers", md, payload)


if __name__ == "__main__":
    main()
