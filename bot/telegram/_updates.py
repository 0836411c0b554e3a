"""Concurrent update handling that keeps each chat's updates in order.

PTB's default (``concurrent_updates=False``) handles one update at a time: one slow `/sticker` holds up every
other group, and messages arriving together never share a group commit. ``concurrent_updates=True`` would
handle a chat's updates out of order (a message recorded after the `/sticker` that should have read it, a
button press before the answer it belongs to). :class:`PerChatUpdateProcessor` runs up to ``limit`` updates
at once, but the updates of one chat (or, for inline queries, which have none, of one user) one after another
in the order Telegram sent them. An update waiting for its chat does not take one of the ``limit`` slots, so a
busy chat cannot starve the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

# The base class's own semaphore is only a formality here: the real bound applies after the per-chat wait.
_UNBOUNDED = 2**31 - 1


def order_key(update: object) -> tuple[str, int] | None:
    """Updates with the same key are handled in arrival order; None: no ordering needed."""
    if not isinstance(update, Update):
        return None
    if update.effective_chat is not None:
        return ("chat", update.effective_chat.id)
    if update.effective_user is not None:
        return ("user", update.effective_user.id)
    return None


class PerChatUpdateProcessor(BaseUpdateProcessor):
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit  # before the base class, which reads max_concurrent_updates
        super().__init__(max_concurrent_updates=_UNBOUNDED)
        self._slots = asyncio.Semaphore(limit)
        # key → (the lock its updates take in turn, how many updates hold or wait for it); dropped at 0
        self._chats: dict[tuple[str, int], tuple[asyncio.Lock, int]] = {}

    @property
    def max_concurrent_updates(self) -> int:
        return self.limit

    @property
    def waiting_chats(self) -> int:
        """Chats with an update in flight or waiting (bounded by the updates in flight)."""
        return len(self._chats)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = order_key(update)
        if key is None:
            async with self._slots:
                await coroutine
            return
        lock, users = self._chats.get(key) or (asyncio.Lock(), 0)
        self._chats[key] = (lock, users + 1)
        started = False
        try:
            async with lock, self._slots:  # in turn within the chat, then one of the slots
                started = True
                await coroutine
        finally:
            close = getattr(coroutine, "close", None)
            if not started and close is not None:  # cancelled while waiting (shutdown): never run it
                close()
            lock, users = self._chats[key]
            if users == 1:
                del self._chats[key]
            else:
                self._chats[key] = (lock, users - 1)

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass
