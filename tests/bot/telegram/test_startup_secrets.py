"""Issue 14: `stickerpick telegram` against a Bot API server that refuses the token, or whose error text
echoes the request path (`/bot<token>/getMe`, re-cased by python-telegram-bot): stderr, which also carries
every log line, gets one line and never the token, in any letter case, at INFO or at DEBUG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.settings import Settings

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"
SECRET = TOKEN.partition(":")[2]
REPO = Path(__file__).resolve().parents[3]


def _echo_server(status: int) -> tuple[ThreadingHTTPServer, str]:
    class Echo(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if status >= 500:  # a proxy's HTML error page that quotes the path
                body = f"<html><h1>{status}</h1>no upstream for {self.path}</html>".encode()
            else:
                body = json.dumps(
                    {
                        "ok": False,
                        "error_code": status,
                        "description": f"Bad Request: no route for {self.path}",
                    }
                ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if status >= 500 else "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/bot"


@pytest.fixture
def server() -> Iterator[object]:
    servers: list[ThreadingHTTPServer] = []

    def start(status: int) -> str:
        srv, url = _echo_server(status)
        servers.append(srv)
        return url

    yield start
    for srv in servers:
        srv.shutdown()


def _bot_env(migrated: Settings, base_url: str, level: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "STICKERPICK_HOME": str(migrated.home),
        "DATABASE_URL": migrated.db_url,
        "STICKERPICK_MODEL_DIR": str(migrated.model_dir),
        "STICKERPICK_DEFAULT_PACKS": "[]",
        "STICKERPICK_TELEGRAM_BASE_URL": base_url,
        "STICKERPICK_LOG_LEVEL": level,
        "TELEGRAM_BOT_TOKEN": TOKEN,
    }


def _run_bot(migrated: Settings, base_url: str, level: str) -> subprocess.CompletedProcess[str]:
    env = _bot_env(migrated, base_url, level)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "telegram"],
        env=env,
        cwd=migrated.home.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _leaks(text: str) -> bool:
    lowered = text.lower()
    return SECRET.lower() in lowered or TOKEN.lower() in lowered


@pytest.mark.parametrize(
    ("status", "level"),
    [(401, "INFO"), (400, "INFO"), (400, "DEBUG")],
)
def test_a_failed_start_prints_one_line_without_the_token(
    migrated: Settings, server, status: int, level: str
):
    result = _run_bot(migrated, server(status), level)
    assert result.returncode == 1, result.stderr
    out = result.stdout + result.stderr
    assert not _leaks(out), out
    last = result.stderr.strip().splitlines()[-1]
    if status == 400:
        assert last.startswith("The Telegram bot stopped: BadRequest"), result.stderr
    else:
        assert "TELEGRAM_BOT_TOKEN" in last, result.stderr
    # no traceback of ours (the exit) unless asked for; python-telegram-bot logs its own, scrubbed
    assert ("bot/telegram/_app.py" in out) == (level == "DEBUG"), out
    if level == "DEBUG":
        assert "<redacted>" in out, out


def test_a_server_error_at_start_is_retried_without_the_token(migrated: Settings, server) -> None:
    """A 5xx whose page echoes the path (token included) means Telegram is down: the bot keeps retrying, and
    its warnings, at DEBUG too, never carry the token; SIGTERM then stops it."""
    import signal
    import time

    env = _bot_env(migrated, server(502), "DEBUG")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "telegram"],
        env=env,
        cwd=migrated.home.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and sum("cannot be reached" in ln for ln in lines) < 2:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, rest = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, rest = proc.communicate()
    text = "".join(lines) + rest + out
    assert sum("cannot be reached" in ln for ln in lines) >= 2, text
    assert not _leaks(text), text
