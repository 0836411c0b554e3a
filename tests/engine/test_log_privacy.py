"""Issue 14: no log line, at any level, carries message text — not while a flood is ingested, not when a
group-commit batch is refused (its SQL parameters are other people's messages), not at DEBUG where the
database drivers would log every statement with its parameters and rows."""

from __future__ import annotations

import asyncio
import logging

import pytest

from engine.service import ChatRef, UserRef, open_service


def _everything(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    return caplog.text + "\n".join(formatter.format(r) for r in caplog.records)


async def test_no_log_line_carries_message_text(migrated, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)  # the root at DEBUG, as STICKERPICK_LOG_LEVEL=DEBUG sets it
    first, second = await open_service(migrated), await open_service(migrated)  # two workers, one database
    try:
        chat = ChatRef("test", "group")
        carol = UserRef("test", "carol")
        await first.record(chat, carol, "SECRET-carol-first")  # `first` now caches carol's id
        for i in range(5):  # and the others' ids: from here on every record goes straight to the writer
            await first.record(chat, UserRef("test", f"u{i}"), f"SECRET-hello-{i}")
        await second.forget(carol)  # …which goes stale: carol is deleted by the other worker

        async def say(i: int) -> None:
            await first.record(chat, UserRef("test", f"u{i % 5}"), f"SECRET-flood-{i}")

        # a flood shares batches with carol's message, which the database refuses (her user row is gone):
        # the batch is retried one by one, and carol's row is looked up again by the service
        stale = first.record(chat, carol, "SECRET-carol-stale")
        await asyncio.gather(*(say(i) for i in range(150)), stale, *(say(i) for i in range(150, 300)))
        turns = await first.recent(chat)
        assert turns and all(t.text.startswith("SECRET-") for t in turns)
    finally:
        await first.close()
        await second.close()
    logged = _everything(caplog)
    assert "refused" in logged  # the batch was refused and logged…
    assert "SECRET-" not in logged  # …without anyone's text
