"""Scale-out: two `stickerpick telegram` worker processes in webhook mode sharing one database.

The test plays Telegram on loopback: a :class:`FakeBotApiServer` answers the workers' Bot API calls (each
worker gets its own base URL prefix, so every call says which worker made it) and the test POSTs updates to
the workers' webhook endpoints the way Telegram (through a load balancer) would. Both workers get the same
public webhook URL and secret and listen on their own port, as behind a reverse proxy. The database is a
shared SQLite file, or a fresh PostgreSQL database when STICKERPICK_TEST_PG is set.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from bot.i18n import LANGUAGES
from bot.telegram import _texts
from bot.telegram._context import BoundedCache
from engine.db import Feedback, Sticker, Suggestion, SuggestionItem
from engine.service import StickerService
from engine.settings import Settings
from tests.auxil.telegram import ALICE, BOB, GROUP, OTHER_GROUP, TOKEN, FakeBotApi, FakeBotApiServer
from tests.bot.telegram.conftest import GROUP_REF, Harness, add_food_pack, buttons

SECRET = "scale-out_secret-0123"
PUBLIC_URL = "https://bot.example.test/telegram/updates"  # what the reverse proxy serves; never dialled
START_TIMEOUT_S = 45.0  # two cold Python processes on a busy machine
WAIT_S = 15.0
STOP_TIMEOUT_S = 15.0
HTTP_TIMEOUT = httpx.Timeout(10.0)
CAKE_BLUE = (30, 30, 200)  # make_pack paints the cake sticker this colour

T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Worker:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/telegram/updates"

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def _worker_env(settings: Settings, api_base: str, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STICKERPICK_", "TELEGRAM_", "DISCORD_")) and k != "DATABASE_URL"
    }
    assert settings.model_dir is not None
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        DATABASE_URL=settings.db_url,
        STICKERPICK_HOME=str(settings.home),
        STICKERPICK_MODEL_DIR=str(settings.model_dir),
        STICKERPICK_DEFAULT_PACKS="[]",
        STICKERPICK_STICKER_COOLDOWN_S="0",
        STICKERPICK_MODEL_CHECK_S="0",
        STICKERPICK_TELEGRAM_BASE_URL=api_base,
        STICKERPICK_TELEGRAM_WEBHOOK_URL=PUBLIC_URL,
        STICKERPICK_TELEGRAM_WEBHOOK_LISTEN="127.0.0.1",
        STICKERPICK_TELEGRAM_WEBHOOK_PORT=str(port),
        STICKERPICK_TELEGRAM_WEBHOOK_SECRET=SECRET,
        STICKERPICK_LOG_LEVEL="INFO",
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _start(name: str, settings: Settings, server: FakeBotApiServer, workdir: Path) -> Worker:
    port = _free_port()
    log = workdir / f"worker-{name}.log"
    with log.open("wb") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, "-c", "from bot.cli import main; main()", "telegram"],
            cwd=workdir,  # no stray .env
            env=_worker_env(settings, server.base_url(name), port),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Worker(name, port, proc, log)


async def _wait_listening(worker: Worker, deadline: float) -> None:
    while True:
        if worker.proc.poll() is not None:
            pytest.fail(f"worker {worker.name} exited with {worker.proc.returncode}:\n{worker.tail()}")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", worker.port), 1.0)
        except (OSError, TimeoutError):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"worker {worker.name} did not listen within {START_TIMEOUT_S} s:\n{worker.tail()}"
                )
            await asyncio.sleep(0.2)
            continue
        writer.close()
        return


def _stop(workers: list[Worker]) -> None:
    for w in workers:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait(5)


async def _eventually(what: str, probe: Callable[[], Any], workers: list[Worker]) -> Any:
    """Poll ``probe`` (sync or async) until it returns something truthy, for at most WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- worker {w.name}\n{w.tail()}" for w in workers)
            pytest.fail(f"timed out waiting for {what}\n{logs}")
        await asyncio.sleep(0.1)


def _colour(webp: bytes) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(webp)) as im:
        r, g, b, _ = im.convert("RGBA").getpixel((im.width // 2, im.height // 2))
    return r, g, b


async def test_two_webhook_workers_share_the_database(
    settings: Settings, service: StickerService, tmp_path: Path
) -> None:
    await add_food_pack(service, tmp_path / "food")
    api = FakeBotApi()
    api.add_chat(GROUP, admins=[ALICE])
    workdir = tmp_path / "workers"
    workdir.mkdir()
    async with FakeBotApiServer(api) as server:
        workers: list[Worker] = []
        try:
            workers = [_start(name, settings, server, workdir) for name in ("a", "b")]
            a, b = workers
            deadline = time.monotonic() + START_TIMEOUT_S
            for w in workers:
                await _wait_listening(w, deadline)
            # Each worker registered the one public URL, with the shared secret, and set its command menu.
            hooks = api.called("setWebhook")
            assert sorted(c.origin for c in hooks) == ["a", "b"]
            assert all(c.params["url"] == PUBLIC_URL and c.params["secret_token"] == SECRET for c in hooks)
            menus = 2 * len(LANGUAGES)  # everyone's and the admins', in every language, per worker
            await _eventually(
                "the command menus", lambda: len(api.called("setMyCommands")) == 2 * menus, workers
            )

            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:

                async def post(w: Worker, update: dict[str, Any], secret: str | None = SECRET) -> int:
                    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
                    return (await http.post(w.url, json=update, headers=headers)).status_code

                # Updates without the secret, or with a wrong one, are refused by every worker.
                for w in workers:
                    assert await post(w, api.message(GROUP, ALICE, "intruder"), secret=None) == 403
                    assert await post(w, api.message(GROUP, ALICE, "intruder"), secret="wrong") == 403

                # The conversation reaches worker A …
                assert await post(a, api.message(GROUP, ALICE, "what should we eat tonight")) == 200
                last = api.message(GROUP, BOB, "birthday cake with candles!")
                assert await post(a, last) == 200

                async def recorded() -> bool:
                    return [t.text for t in await service.recent(GROUP_REF)][-2:] == [
                        "what should we eat tonight",
                        "birthday cake with candles!",
                    ]

                await _eventually("worker A to record the conversation", recorded, workers)
                assert "intruder" not in [t.text for t in await service.recent(GROUP_REF)]

                # … and /sticker reaches worker B, which ranks from what A recorded.
                command = api.message(GROUP, BOB, "/sticker 3")
                assert await post(b, command) == 200
                sent = await _eventually(
                    "worker B's sticker", lambda: api.sent(GROUP["id"], "sendSticker"), workers
                )
                # The load balancer sends the button press on B's answer to A: A knows the suggestion
                # from the database. Someone else's press is refused; the requester's ✓ keeps the sticker.
                shown = api.last_message(GROUP["id"])
                keep = next(b["callback_data"] for b in shown["reply_markup"]["inline_keyboard"][-1])
                assert keep.endswith(":k:0")
                assert await post(a, api.callback(ALICE, shown, keep)) == 200
                assert await post(a, api.callback(BOB, shown, keep)) == 200
                answers = await _eventually(
                    "worker A's answers to the presses",
                    lambda: api.called("answerCallbackQuery")[1:],
                    workers,
                )
            texts_ = [c.params.get("text") for c in api.called("answerCallbackQuery")]
            assert texts_ == [_texts.ONLY_REQUESTER.format(name=BOB["first_name"]), _texts.KEPT], texts_
            assert all(c.origin == "a" for c in answers)
            assert "reply_markup" not in api.last_message(GROUP["id"])  # the buttons went away
            assert [c.origin for c in sent] == ["b"]
            assert not [c for c in api.calls if c.origin == "a" and c.method.startswith("send")]
            call = sent[0]
            assert call.params["reply_parameters"]["message_id"] == command["message"]["message_id"]
            assert _colour(call.uploads["sticker"]) == CAKE_BLUE
            async with service.sessions() as session:
                suggestion = (
                    (await session.execute(select(Suggestion).order_by(Suggestion.id.desc())))
                    .scalars()
                    .first()
                )
                assert suggestion is not None
                ranked = (
                    (
                        await session.execute(
                            select(Sticker.platform_sticker_id)
                            .join(SuggestionItem, SuggestionItem.sticker_id == Sticker.id)
                            .where(SuggestionItem.suggestion_id == suggestion.id)
                            .order_by(SuggestionItem.rank)
                        )
                    )
                    .scalars()
                    .all()
                )
                picked = (
                    (
                        await session.execute(
                            select(Sticker.platform_sticker_id)
                            .join(Feedback, Feedback.sticker_id == Sticker.id)
                            .where(Feedback.suggestion_id == suggestion.id, Feedback.kind == "picked")
                        )
                    )
                    .scalars()
                    .all()
                )
            assert ranked[0] == "cake" and len(ranked) == 3
            assert picked == ["cake"]  # A recorded the requester's pick of what B showed
            assert suggestion.last_message_id is not None

            # Both workers are still serving.
            assert all(w.proc.poll() is None for w in workers), "\n".join(w.tail() for w in workers)
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
                for w in workers:
                    response = await http.post(
                        w.url,
                        json=api.message(GROUP, ALICE, f"still there, {w.name}?"),
                        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                    )
                    assert response.status_code == 200
        finally:
            await asyncio.to_thread(_stop, workers)  # the fake API keeps answering while they shut down
    # SIGTERM is a clean shutdown: run_webhook stops, the service closes, the process exits 0.
    for w in workers:
        assert w.proc.returncode == 0, f"worker {w.name} exited with {w.proc.returncode}:\n{w.tail()}"
        assert "Traceback" not in w.tail(), w.tail()


async def test_a_button_press_for_another_workers_suggestion_is_served_from_the_database(
    tg: Harness, tmp_path: Path
) -> None:
    """In process: a worker that never saw the /sticker answer (empty cache) swaps and keeps from the database,
    without recording the same pick twice; a press claiming the suggestion from another chat expires."""
    await add_food_pack(tg.service, tmp_path / "food")
    await tg.send(tg.api.message(GROUP, ALICE, "birthday cake with candles!"))
    command = tg.api.message(GROUP, BOB, "/sticker 3", thread_id=77)
    await tg.send(command)
    shown = tg.api.last_message(GROUP["id"])
    items = tg.pending().items
    tg.deps.suggestions = BoundedCache(10)  # the answer came from another worker
    swap = buttons(shown)[0][1]
    await tg.send(tg.api.callback(BOB, shown, swap))
    swapped = tg.api.sent(GROUP["id"], "sendSticker")[-1]
    assert swapped.params["reply_parameters"]["message_id"] == command["message"]["message_id"]
    assert int(swapped.params["message_thread_id"]) == 77
    assert (GROUP["id"], shown["message_id"]) in tg.api.deleted
    tg.deps.suggestions = BoundedCache(10)  # and the next press reaches yet another worker
    now_shown = tg.api.last_message(GROUP["id"])
    await tg.send(tg.api.callback(BOB, now_shown, buttons(now_shown)[-2][1]))  # ✓ keep the swapped one
    assert tg.api.called("answerCallbackQuery")[-1].params.get("text") == _texts.KEPT
    async with tg.service.sessions() as session:
        picks = (
            await session.execute(select(Feedback.sticker_id).where(Feedback.kind == "picked"))
        ).scalars()
        assert list(picks) == [items[1].sticker_id]  # once, though two processes saw it
    # The same suggestion id pressed under a message of another chat is not that chat's: expired.
    tg.api.add_chat(OTHER_GROUP)
    tg.deps.suggestions = BoundedCache(10)
    tg.deps.settled = BoundedCache(10)
    foreign = {**now_shown, "chat": OTHER_GROUP}
    await tg.send(tg.api.callback(BOB, foreign, swap))
    assert tg.api.called("answerCallbackQuery")[-1].params["text"] == _texts.SUGGESTION_EXPIRED
