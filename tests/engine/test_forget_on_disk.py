"""Issue 14: after /forget (and /logging off) the text is gone from every file on disk — the SQLite database,
its write-ahead log, free pages, and the media store — not only from the rows the service reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.service import ChatRef, UserRef
from tests.conftest import TEST_PG
from tests.engine.test_service import make_pack

pytestmark = pytest.mark.skipif(bool(TEST_PG), reason="the files of a SQLite database")
CHAT = ChatRef("test", "group", "Group")
ALICE, BOB = UserRef("test", "alice", "Alice"), UserRef("test", "bob", "Bob")


def _files_holding(home: Path, needle: bytes) -> list[str]:
    return sorted(
        str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and needle in p.read_bytes()
    )


async def test_forget_leaves_no_copy_in_the_database_files(service, tmp_path):
    home = service.settings.home
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.set_logging(CHAT, True)
    for i in range(40):  # enough rows that the pages are rewritten many times over (copies in the WAL)
        await service.record(CHAT, ALICE, f"ALICE-SECRET-{i:03d} pizza tonight?")
        await service.record(CHAT, BOB, f"bob says sushi {i}")
        if i % 5 == 0:
            await service.record_sticker(CHAT, BOB, "sushi")  # samples whose context holds alice's turns
    assert (home / "test.db-wal").exists()
    assert _files_holding(home, b"ALICE-SECRET-")  # the test sees the text where it is
    await service.forget(ALICE)
    assert _files_holding(home, b"ALICE-SECRET-") == []
    assert [t.text for t in await service.recent(CHAT)][-1].startswith("bob says sushi")
    assert _files_holding(home, b"bob says sushi")  # bob's turns stay


async def test_logging_off_leaves_no_copy_of_the_samples(service, tmp_path):
    home = service.settings.home
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    await service.set_logging(CHAT, True)
    for i in range(10):
        await service.record(CHAT, ALICE, f"LOGGED-{i:03d} pizza tonight?")
        await service.record_sticker(CHAT, BOB, "pizza")
    await service.clear_history(CHAT)  # the history itself is gone; the samples kept their copies
    assert _files_holding(home, b"LOGGED-")
    await service.set_logging(CHAT, False)
    assert _files_holding(home, b"LOGGED-") == []
