"""End to end against a real third-party Bot API emulator (npm `telegram-test-api@4.2.1`), over HTTP.

The test starts the emulator with node on a free loopback port; the bot polls it with getUpdates through PTB's
``base_url``, while the test plays the users through the emulator's client API. The emulator implements the
message, edit, delete and callback methods only: sticker methods are covered by the offline tests.

Two tests: the Application in this process, with a request adapter that also answers getChatAdministrators
(the emulator has none), for the admin and button flows; and the real ``stickerpick telegram`` process with
nothing in between (``STICKERPICK_TELEGRAM_BASE_URL`` at the emulator), as far as /sticker: the emulator
has no sendSticker, so the process ranks the group's stickers, fails to send the best one and says sorry.
Run them alone: ``.venv/bin/pytest tests/bot/telegram/test_emulator.py`` (needs node and ``npm ci --prefix vendor``).
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from telegram.ext import AIORateLimiter

from bot.telegram import _texts as texts
from bot.telegram import build_application
from bot.telegram._app import ALLOWED_UPDATES
from engine.service import ChatRef, StickerService
from engine.settings import REPO_ROOT, Settings
from tests.auxil.telegram import TOKEN, EmulatorRequest
from tests.bot.telegram.conftest import telegram_settings
from tests.engine.test_service import PACK, make_pack

EMULATOR = REPO_ROOT / "vendor" / "node_modules" / "telegram-test-api"
EMULATOR_VERSION = "4.2.1"
START_TIMEOUT_S = 20.0
WAIT_S = 15.0
POLL_INTERVAL_S = 0.05  # the emulator answers getUpdates at once (no long polling): poll gently

GROUP = {"id": -1001234567890, "type": "supergroup", "title": "Driving club"}
ALICE = {"id": 501, "is_bot": False, "first_name": "Alice", "username": "alice"}  # the group's admin
BOB = {"id": 502, "is_bot": False, "first_name": "Bob", "username": "bob"}
GROUP_REF = ChatRef("telegram", str(GROUP["id"]))
EMPTY_GROUP = {"id": -1001234567891, "type": "supergroup", "title": "No packs yet"}
PROCESS_START_TIMEOUT_S = 60.0
PROCESS_STOP_TIMEOUT_S = 30.0

# Started with the emulator's own API; stops when the test closes its stdin (or the test process dies).
SERVER_JS = """
const TelegramServer = require('telegram-test-api');
const server = new TelegramServer({port: Number(process.argv[1]), host: '127.0.0.1', storeTimeout: 600});
server.start().then(() => console.log('ready'));
const stop = () => server.stop().then(() => process.exit(0));
process.stdin.on('end', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
"""


def _emulator_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (the emulator test needs Node.js)"
    package = EMULATOR / "package.json"
    if not package.is_file():
        return f"npm package telegram-test-api is missing: run `npm ci --prefix vendor` ({EMULATOR})"
    version = json.loads(package.read_text()).get("version")
    if version != EMULATOR_VERSION:
        return f"telegram-test-api {version} is installed; this test is written for {EMULATOR_VERSION}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def emulator() -> Any:
    reason = _emulator_missing()
    if reason:
        pytest.skip(reason)
    port = _free_port()
    proc = subprocess.Popen(
        ["node", "-e", SERVER_JS, str(port)],
        cwd=EMULATOR.parent.parent,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
        line = proc.stdout.readline() if ready else ""  # "ready", or "" when node died or hung
        if line.strip() != "ready":
            proc.kill()
            pytest.fail(f"the emulator did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Users:
    """The people in the group, through the emulator's client API (not the Bot API)."""

    def __init__(self, client: httpx.AsyncClient, chat: dict[str, Any] = GROUP) -> None:
        self.client = client
        self.chat = chat

    def _message(self, user: dict, text: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "botToken": TOKEN,
            "from": user,
            "chat": self.chat,
            "date": int(time.time()),
            "text": text,
        }
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return message

    async def say(self, user: dict, text: str) -> None:
        route = "/sendCommand" if text.startswith("/") else "/sendMessage"
        (await self.client.post(route, json=self._message(user, text))).raise_for_status()

    async def press(self, user: dict, bot_message: dict[str, Any], data: str) -> None:
        message = {
            "message_id": bot_message["messageId"],
            "date": int(time.time()),
            "chat": self.chat,
            "text": bot_message["message"]["text"],
        }
        callback = {"botToken": TOKEN, "from": user, "message": message, "data": data}
        (await self.client.post("/sendCallback", json=callback)).raise_for_status()

    async def bot_messages(self) -> list[dict[str, Any]]:
        """Everything the bot sent to this chat, as the emulator stores it (edits applied)."""
        response = await self.client.post("/getUpdatesHistory", json={"token": TOKEN})
        response.raise_for_status()
        return [  # users' updates carry a "chat" (or are callback queries); the bot's messages a "chat_id"
            u
            for u in response.json()["result"]
            if "message" in u
            and "chat" not in u["message"]
            and str(u["message"].get("chat_id")) == str(self.chat["id"])
        ]

    async def reply_after(self, count: int) -> dict[str, Any]:
        """The bot's next message to this chat (after ``count`` of them)."""
        messages = await wait_for(lambda: self._more(count))
        return messages[count]

    async def _more(self, count: int) -> list[dict[str, Any]] | None:
        messages = await self.bot_messages()
        return messages if len(messages) > count else None


async def wait_for(check: Callable[[], Awaitable[Any]], timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting for the bot")


@pytest.fixture
async def bot(
    emulator: str, settings: Settings, service: StickerService, tmp_path: Path
) -> AsyncIterator[Users]:
    settings = telegram_settings(settings)
    settings.telegram_base_url = f"{emulator}/bot"
    admins = {GROUP["id"]: [ALICE]}  # the emulator has no getChatAdministrators: the adapter answers it
    app = build_application(
        settings,
        service,
        request=EmulatorRequest(admins=admins),
        get_updates_request=EmulatorRequest(admins=admins),
        rate_limiter=AIORateLimiter(overall_max_rate=0, group_max_rate=0),
    )
    await service.add_pack(GROUP_REF, make_pack(tmp_path / "food"))
    async with httpx.AsyncClient(base_url=emulator, timeout=10) as client, app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(
            poll_interval=POLL_INTERVAL_S, timeout=0, allowed_updates=ALLOWED_UPDATES
        )
        try:
            yield Users(client)
        finally:
            await app.updater.stop()
            await app.stop()


async def test_a_group_conversation_through_the_emulator(bot: Users, service: StickerService):
    conversation = [
        (ALICE, "guess what, I finally passed my driving test!!"),
        (BOB, "no way, congratulations! that's amazing"),
        (ALICE, "thanks! pizza tonight to celebrate?"),
    ]
    for user, text in conversation:
        await bot.say(user, text)

    async def recorded() -> list | None:
        turns = await service.recent(GROUP_REF)
        return turns if len(turns) == len(conversation) else None

    turns = await wait_for(recorded)
    assert [(t.speaker, t.text) for t in turns] == [(u["first_name"], text) for u, text in conversation]

    await bot.say(BOB, "/help")
    help_ = (await bot.reply_after(0))["message"]
    assert "/sticker" in help_["text"] and "/forget" in help_["text"] and "privacy mode" in help_["text"]
    assert help_["parse_mode"] == "HTML"

    await bot.say(BOB, "/packs")
    packs = (await bot.reply_after(1))["message"]["text"]
    assert packs.startswith("Sticker packs in this chat:") and "(food) — 5 stickers" in packs

    await bot.say(BOB, "/logging")
    assert "is <b>off</b>" in (await bot.reply_after(2))["message"]["text"]
    await bot.say(BOB, "/logging on")  # Bob is no admin
    assert (await bot.reply_after(3))["message"]["text"] == "Sorry, only this chat's admins can do that."
    assert not await service.logging_enabled(GROUP_REF)
    await bot.say(ALICE, "/logging on")
    assert "now <b>on</b>" in (await bot.reply_after(4))["message"]["text"]
    assert await service.logging_enabled(GROUP_REF)

    # callbacks round-trip: a button press comes in through getUpdates, the bot edits its message
    await bot.say(ALICE, "/removepack")
    menu = await bot.reply_after(5)
    [[button]] = menu["message"]["reply_markup"]["inline_keyboard"]
    assert button == {"text": "Food stickers", "callback_data": "r:food"}
    await bot.press(ALICE, menu, button["callback_data"])

    async def removed() -> bool:
        messages = await bot.bot_messages()
        return messages[5]["message"]["text"] == "Removed <b>food</b> from this chat."

    await wait_for(removed)
    assert await service.list_packs(GROUP_REF) == []

    await bot.say(BOB, "/forget")
    confirm = await bot.reply_after(6)
    yes, no = confirm["message"]["reply_markup"]["inline_keyboard"][0]
    assert (yes["text"], no["text"]) == ("Yes, forget me", "Cancel")
    await bot.press(BOB, confirm, yes["callback_data"])

    async def forgotten() -> bool:
        messages = await bot.bot_messages()
        return messages[6]["message"]["text"].startswith("Done: I deleted 1 message of yours")

    await wait_for(forgotten)
    assert [t.speaker for t in await service.recent(GROUP_REF)] == ["Alice", "Alice"]


class BotProcess:
    """``python -m bot.cli telegram`` as an operator runs it, pointed at the emulator; its log lines as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    async def logged(self, text: str, timeout: float = WAIT_S) -> None:
        async def seen() -> bool:
            if self.proc.poll() is not None and text not in self.log:
                raise AssertionError(f"the bot exited ({self.proc.returncode}):\n{self.log}")
            return text in self.log

        try:
            await wait_for(seen, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; no {text!r} in the bot's log:\n{self.log}") from None

    def terminate(self) -> int:
        """SIGTERM, as systemd or docker stop sends it: the bot must stop by itself, cleanly."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=PROCESS_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the bot did not stop on SIGTERM:\n{self.log}") from None
        self._reader.join(timeout=5)
        return code


@pytest.fixture
def bot_process(emulator: str, migrated: Settings) -> Any:
    """The real process, in a fresh home on a migrated database, with only the environment to configure it."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "OMP_NUM_THREADS": "1",
        "STICKERPICK_HOME": str(migrated.home),
        "DATABASE_URL": migrated.db_url,
        "STICKERPICK_MODEL_DIR": str(migrated.model_dir),
        "STICKERPICK_DEFAULT_PACKS": "[]",
        "STICKERPICK_STICKER_COOLDOWN_S": "0",
        "STICKERPICK_LOG_LEVEL": "INFO",
        "STICKERPICK_TELEGRAM_BASE_URL": f"{emulator}/bot",
        "TELEGRAM_BOT_TOKEN": TOKEN,
    }
    env.pop("STICKERPICK_ENV_FILE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "telegram"],
        env=env,
        cwd=migrated.home.parent,  # no .env there
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    bot = BotProcess(proc)
    try:
        yield bot
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_the_real_process_against_the_emulator_reaches_sticker(
    emulator: str, bot_process: BotProcess, service: StickerService, tmp_path: Path
):
    """No adapter in between: the getMe that used to crash it (no ``is_bot``), millisecond dates and the
    emulator's missing methods (setMyCommands, getChat, getChatAdministrators, sendSticker) go through the
    product's compatibility layer for non-Telegram servers. The flow stops where the emulator does: it has no
    sendSticker, so /sticker ranks the group's pack and stores the suggestion, the upload of the best sticker
    fails with the emulator's "not supported", and the bot says sorry as a reply. A /forget confirmation then
    takes a button press through the process; SIGTERM stops it, cleanly."""
    await service.add_pack(GROUP_REF, make_pack(tmp_path / "food"))
    await bot_process.logged("Application started", PROCESS_START_TIMEOUT_S)
    assert "getMe without is_bot" in bot_process.log
    assert (
        "could not set the command menu" in bot_process.log
    )  # no setMyCommands in the emulator: started anyway

    async with httpx.AsyncClient(base_url=emulator, timeout=10) as client:
        group, empty = Users(client, GROUP), Users(client, EMPTY_GROUP)
        await empty.say(BOB, "/sticker")
        assert (await empty.reply_after(0))["message"]["text"] == texts.NO_PACKS

        conversation = [
            (ALICE, "guess what, I finally passed my driving test!!"),
            (BOB, "no way, congratulations! let's get pizza tonight"),
        ]
        for user, text in conversation:
            await group.say(user, text)

        async def recorded() -> list | None:
            turns = await service.recent(GROUP_REF)
            return turns if len(turns) == len(conversation) else None

        turns = await wait_for(recorded)
        assert [(t.speaker, t.text) for t in turns] == [(u["first_name"], text) for u, text in conversation]

        await group.say(BOB, "/sticker")
        sorry = (await group.reply_after(0))["message"]
        assert sorry["text"] == texts.GENERIC_ERROR
        await bot_process.logged("API method 'sendSticker' is not supported")
        # the ranking ran: the suggestion is stored, for Bob, from the group's pack
        stored = await service.stored_suggestion(1, GROUP_REF)
        assert stored is not None and stored.requester is not None
        assert stored.requester.user_id == str(BOB["id"])
        assert stored.items
        assert {i.platform_sticker_id for i in stored.items} <= {s["id"] for s in PACK["stickers"]}

        # a button round trip in the real process: the press comes without chat_instance, the edit answers null
        await group.say(BOB, "/forget")
        confirm = await group.reply_after(1)
        yes, _ = confirm["message"]["reply_markup"]["inline_keyboard"][0]
        await group.press(BOB, confirm, yes["callback_data"])

        async def forgotten() -> bool:
            messages = await group.bot_messages()
            return messages[1]["message"]["text"].startswith("Done: I deleted 1 message of yours")

        await wait_for(forgotten)
        assert [t.speaker for t in await service.recent(GROUP_REF)] == ["Alice"]

    assert bot_process.terminate() == 0, bot_process.log
    log = bot_process.log
    assert "Application.stop() complete" in log, log
    assert TOKEN.partition(":")[2] not in log, log
    for repaired in ("dates in milliseconds", "callback query without chat_instance", "answered null"):
        assert repaired in log, log
    # the one error is the sticker the emulator cannot send (logged with its traceback by the error handler)
    errors = [line for line in bot_process.lines if " ERROR " in line]
    assert len(errors) == 1 and "update" in errors[0] and "sendSticker" in errors[0], log
    assert log.count("Traceback") == 1 and "The Telegram bot stopped" not in log, log


def test_the_emulator_test_skips_with_a_reason_when_node_or_the_package_is_missing(monkeypatch, tmp_path):
    import tests.bot.telegram.test_emulator as module

    monkeypatch.setattr(module.shutil, "which", lambda name: None)
    assert "node is not installed" in (module._emulator_missing() or "")
    monkeypatch.setattr(module.shutil, "which", lambda name: "/usr/bin/node")
    monkeypatch.setattr(module, "EMULATOR", tmp_path / "telegram-test-api")
    assert "npm ci --prefix vendor" in (module._emulator_missing() or "")
