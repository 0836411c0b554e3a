"""Issue 14: at DEBUG, the Discord bot logs no message text. discord.py's gateway logs every event it receives
(message content included) and its HTTP client every payload: those loggers stay at INFO."""

from __future__ import annotations

import logging

import pytest

from bot.discord._bot import CONTENT_LOGGERS
from tests.auxil.discord import OfflineServer


async def test_no_message_text_in_the_logs_at_debug(
    stocked: OfflineServer, bob, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    await stocked.say(bob, "SECRET-TEXT pizza tonight?")
    assert caplog.records  # DEBUG logging was on…
    assert "SECRET-TEXT" not in caplog.text  # …and carried nobody's words
    for name in CONTENT_LOGGERS:  # the socket and REST loggers the offline server does not go through
        assert logging.getLogger(name).getEffectiveLevel() >= logging.INFO, name
