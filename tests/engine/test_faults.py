"""Issue 8, faults: a process killed (SIGKILL) in the middle of message ingestion and of pack indexing.

Each test runs the engine in a child process on the test's database (SQLite file, or PostgreSQL with
STICKERPICK_TEST_PG), kills it with SIGKILL mid-work, then checks on restart: the database is consistent,
everything the child was told was committed is there, and an interrupted import reports itself and resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from engine.db import Message, Pack, Sticker, StickerEmbedding
from engine.service import ChatRef, UserRef, open_service
from engine.settings import REPO_ROOT, Settings

KILL_TIMEOUT_S = 60.0

INGEST = """
import asyncio, sys
from engine.service import ChatRef, UserRef, open_service
from engine.settings import Settings

async def main():
    service = await open_service(Settings())
    async def chat(c):
        ref = ChatRef("test", f"chat{c}")
        for i in range(100000):
            text = f"chat{c} message {i} " + "x" * (1 + i % 50)
            mid = await service.record(ref, UserRef("test", f"u{i % 3}"), text)
            print(mid, text, flush=True)  # acknowledged: committed
    await asyncio.gather(*(chat(c) for c in range(40)))

if __name__ == "__main__":
    asyncio.run(main())
"""

IMPORT = """
import asyncio, sys
from pathlib import Path
from engine.service import open_service
from engine.settings import Settings

async def main():
    service = await open_service(Settings())
    def progress(done, total):
        print("progress", done, total, flush=True)
    report = await service.import_pack(Path(sys.argv[1]), name="big", progress=progress)
    print("done", report.added, flush=True)

if __name__ == "__main__":
    asyncio.run(main())
"""


IMPORT_NO_EMBED = """
import asyncio, sys, time
from pathlib import Path
from engine.service import open_service
from engine.settings import Settings

async def killed_here(pack_id, ranker):  # the import is committed; the process dies before embedding
    print("imported", pack_id, flush=True)
    time.sleep(600)

async def main():
    service = await open_service(Settings())
    service.embeddings.embed_pack = killed_here
    await service.import_pack(Path(sys.argv[1]), name="small")

if __name__ == "__main__":
    asyncio.run(main())
"""


def _child_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STICKERPICK_")}
    env.update(
        STICKERPICK_HOME=str(settings.home),
        DATABASE_URL=settings.db_url,
        STICKERPICK_MODEL_DIR=str(settings.model_dir),
        STICKERPICK_DEFAULT_PACKS="[]",
        PYTHONPATH=str(REPO_ROOT),
        COLUMNS="200",
    )
    return env


def _run_and_kill(script: str, args: list[str], settings: Settings, tmp: Path, until: callable) -> list[str]:
    """Run ``script`` in a child; SIGKILL it once ``until(lines)`` is true. Returns its stdout lines."""
    path = tmp / "child.py"
    path.write_text(textwrap.dedent(script))
    proc = subprocess.Popen(
        [sys.executable, str(path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_child_env(settings),
        cwd=tmp,
        start_new_session=True,  # the kill reaches its decoder workers too
    )
    lines: list[str] = []
    deadline = time.monotonic() + KILL_TIMEOUT_S
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if until(lines):
                break
            assert time.monotonic() < deadline, f"the child never got far enough: {lines[-3:]}"
        else:
            pytest.fail(f"the child ended before it was killed (rc {proc.wait()}): {lines[-3:]}")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return lines


def _check_sqlite(settings: Settings) -> None:
    url = make_url(settings.db_url)
    if url.get_backend_name() != "sqlite":
        return
    with sqlite3.connect(url.database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


async def test_killed_during_ingestion_loses_nothing_acknowledged(migrated, tmp_path):
    lines = _run_and_kill(INGEST, [], migrated, tmp_path, until=lambda got: len(got) >= 2000)
    acked = {}
    for line in lines:
        mid, _, text = line.partition(" ")
        acked[int(mid)] = text
    _check_sqlite(migrated)
    service = await open_service(migrated)
    try:
        async with service.sessions() as session:
            rows = dict(
                (
                    await session.execute(select(Message.id, Message.text).where(Message.id.in_(list(acked))))
                ).all()
            )
        assert rows == acked  # every acknowledged message, with its text
        chat = ChatRef("test", "chat0")  # and the database takes new work
        assert await service.record(chat, UserRef("test", "u0"), "after the crash") is not None
        assert (await service.recent(chat))[-1].text == "after the crash"
    finally:
        await service.close()


def _check_media(service) -> None:
    """Every file under a final name is whole (its name is its content's hash); a killed writer can only
    leave a ``.*.tmp`` file behind, which no row points at."""
    for f in service.store.root.rglob("*"):
        if f.is_file() and not f.name.endswith(".tmp"):
            assert hashlib.sha256(f.read_bytes()).hexdigest() == f.stem, f
            with Image.open(f) as im:
                im.load()


def _packs_list(settings: Settings, tmp: Path) -> str:
    """`stickerpick packs list` in a fresh process, as a user would run it after the crash."""
    done = subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", "packs", "list"],
        capture_output=True,
        text=True,
        env=_child_env(settings),
        cwd=tmp,
        timeout=KILL_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _make_big_pack(folder: Path, n: int) -> None:
    folder.mkdir()
    stickers = []
    for i in range(n):
        colour = (i * 37 % 256, i * 91 % 256, i * 53 % 256, 255)
        Image.new("RGBA", (40 + i % 7, 40), colour).save(folder / f"s{i:04d}.png")
        stickers.append({"file": f"s{i:04d}.png", "id": f"s{i:04d}", "emoji": "🙂", "tags": ["smile"]})
    (folder / "pack.json").write_text(json.dumps({"name": "big", "stickers": stickers}))


async def test_killed_during_pack_indexing_reports_and_resumes(migrated, tmp_path):
    total = 400
    _make_big_pack(tmp_path / "big", total)

    def far_enough(lines: list[str]) -> bool:  # progress(i) for i > 64: the first batch is committed
        last = lines[-1].split()
        return last[0] == "progress" and int(last[1]) >= 150

    lines = _run_and_kill(IMPORT, [str(tmp_path / "big")], migrated, tmp_path, until=far_enough)
    assert not any(line.startswith("done") for line in lines)
    _check_sqlite(migrated)
    service = await open_service(migrated)
    try:
        [info] = await service.list_packs()
        assert info.name == "big" and info.status == "importing"
        assert 64 <= info.stickers < total  # the committed batches survived, the rest did not happen
        kept = info.stickers
        assert info.unfinished and info.source == str(tmp_path / "big")
        listed = _packs_list(migrated, tmp_path)  # the user is told, with the command that finishes it
        assert "importing" in listed and f"stickerpick packs add {tmp_path / 'big'} --name big" in listed
        # an interrupted pack is never served
        chat = ChatRef("test", "g")
        await service.enable_pack(chat, "big")
        await service.record(chat, None, "smile")
        assert not (await service.suggest(chat, cooldown=False)).items
        # every stored picture is whole, and every committed sticker has its picture
        async with service.sessions() as session:
            shas = set((await session.execute(select(Sticker.media_sha256))).scalars())
        assert all(service.store.has(sha) for sha in shas)
        _check_media(service)
        # run again: it resumes where the kill stopped it
        report = await service.import_pack(tmp_path / "big", name="big")
        assert report.unchanged == kept and report.added == total - kept and not report.skipped
        [info] = await service.list_packs()
        assert info.status == "ready" and info.stickers == total
        async with service.sessions() as session:
            n = (await session.execute(select(func.count()).select_from(Sticker))).scalar_one()
            status = (await session.execute(select(Pack.status))).scalar_one()
        assert n == total and status == "ready"
        assert (await service.suggest(chat, cooldown=False)).items
        _check_media(service)
    finally:
        await service.close()
    assert "importing" not in _packs_list(migrated, tmp_path)


async def test_killed_between_import_and_embedding_serves_after_restart(migrated, tmp_path):
    """Issue 14: a pack is served only once its embeddings exist: killed in between, it stays ``importing``
    (with the resume hint) and running the import again embeds it and serves it."""
    _make_big_pack(tmp_path / "small", 10)
    _run_and_kill(
        IMPORT_NO_EMBED,
        [str(tmp_path / "small")],
        migrated,
        tmp_path,
        until=lambda got: got[-1].startswith("imported"),
    )
    _check_sqlite(migrated)
    service = await open_service(migrated)
    try:
        [info] = await service.list_packs()
        assert (info.status, info.stickers) == ("importing", 10)  # the stickers were committed, not served
        assert info.unfinished
        async with service.sessions() as session:
            embedded = (
                await session.execute(select(func.count()).select_from(StickerEmbedding))
            ).scalar_one()
        assert embedded == 0  # killed before the embeddings
        report = await service.import_pack(tmp_path / "small", name="small")
        assert (report.added, report.unchanged) == (0, 10)
        [info] = await service.list_packs()
        assert info.status == "ready"
        chat = ChatRef("test", "g")
        await service.enable_pack(chat, "small")
        await service.record(chat, None, "smile")
        assert (await service.suggest(chat, cooldown=False)).items
        async with service.sessions() as session:
            embedded = (
                await session.execute(select(func.count()).select_from(StickerEmbedding))
            ).scalar_one()
        assert embedded == 10
        _check_media(service)
    finally:
        await service.close()
