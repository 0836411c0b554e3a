"""Message ingestion with group commit.

Every message a bot can see is one row. Committing each in its own transaction caps ingestion at the disk's
fsync rate (SQLite: one WAL commit per message, ~1-2k/s here); :class:`MessageWriter` lets every ``record``
call that arrives while a commit is in flight share the next one. Callers still get their message's id only
after the transaction holding it committed, so nothing acknowledged is ever lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from cachetools import LRUCache
from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.db import Message

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Callers ``submit`` one item each and await its result; one task runs everything submitted so far as one
    batch (``run_batch``: items → a result or an exception per item), then the next. No timer: a lone item
    runs at once, and under load a batch is whatever arrived while the previous one ran, so latency stays one
    batch and throughput grows with concurrency.

    Not used for the int8 dialogue encoder: its activations are quantised with one scale per tensor, so a
    dialogue encoded in a batch with others (and their padding) comes out different (cosine 0.974-0.997 to
    the same dialogue alone, measured on the shipped model) and a suggestion would depend on who else asked."""

    def __init__(
        self,
        run_batch: Callable[[list[T]], Awaitable[list[R | Exception]]],
        max_batch: int,
        name: str,
    ) -> None:
        self.run_batch = run_batch
        self.max_batch = max(1, max_batch)
        self.name = name
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a service reused from another event loop starts afresh
            self._loop, self._task, self._pending = loop, None, []
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name=self.name)
        # shield: a caller that gives up (a cancelled handler) does not cancel the others' work in the batch
        return await asyncio.shield(future)

    async def flush(self) -> None:
        """Wait until everything submitted so far has run (on shutdown)."""
        task = self._task
        if task is not None and not task.done() and self._loop is asyncio.get_running_loop():
            await asyncio.shield(task)

    async def _run(self) -> None:
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            try:
                outcomes = await self.run_batch([item for item, _ in batch])
            except BaseException as exc:  # cancelled or broken: no caller may wait forever
                stopped = RuntimeError(f"{self.name} stopped")
                for _, fut in [*batch, *self._pending]:
                    if not fut.done():
                        fut.set_exception(exc if isinstance(exc, Exception) else stopped)
                self._pending = []
                raise
            self.batches += 1
            self.items += len(batch)
            for (_, fut), outcome in zip(batch, outcomes, strict=True):
                if fut.done():
                    continue
                if isinstance(outcome, Exception):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)


@dataclass(frozen=True)
class PendingMessage:
    chat_id: int
    user_id: int | None
    text: str
    platform_message_id: str | None
    reply_to: str | None
    created_at: datetime

    def row(self) -> dict[str, object]:
        return {
            "chat_id": self.chat_id,
            "user_id": self.user_id,
            "text": self.text,
            "platform_message_id": self.platform_message_id,
            "reply_to": self.reply_to,
            "created_at": self.created_at,
        }


Retention = Callable[[AsyncSession, int], Awaitable[int]]


class MessageWriter:
    """Group commit for messages. ``write`` queues a row and waits for the transaction that holds it; one
    writer task commits everything queued so far in a single multi-row INSERT, then the next batch.

    No timer: a lone message is committed at once (one transaction, as without batching); under load the
    batch is whatever arrived during the previous commit, so latency stays one commit and throughput grows
    with concurrency. ``max_batch=1`` is the one-message-per-transaction path (the benchmark's baseline).
    A batch the database refuses (e.g. a user deleted by another worker's /forget a moment ago) is retried
    row by row, so one bad row fails only its own caller.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        retention: Retention,
        *,
        max_batch: int = 512,
        retention_every: int = 50,
        max_chats: int = 100_000,
    ) -> None:
        self.sessions = sessions
        self.retention = retention
        self.retention_every = retention_every
        self._batcher: MicroBatcher[PendingMessage, int] = MicroBatcher(
            self._commit_batch, max_batch, "stickerpick-message-writer"
        )
        # messages since each chat's last retention pass (bounded; a forgotten count only delays a pass)
        self._since_retention: LRUCache[int, int] = LRUCache(max(1, max_chats))

    @property
    def batches(self) -> int:  # for the benchmark: transactions committed
        return self._batcher.batches

    @property
    def rows(self) -> int:
        return self._batcher.items

    async def write(self, message: PendingMessage) -> int:
        return await self._batcher.submit(message)

    async def flush(self) -> None:
        """Wait until everything queued so far is committed (on shutdown)."""
        await self._batcher.flush()

    def reset_retention(self, chat_id: int) -> None:
        self._since_retention.pop(chat_id, None)

    async def _commit_batch(self, messages: list[PendingMessage]) -> list[int | Exception]:
        try:
            return list(await self._commit(messages))
        except DBAPIError as exc:
            if len(messages) == 1:
                return [exc]
            # the error's class and the database's reason only: its statement parameters are messages
            log.warning(
                "a batch of %d messages was refused (%s: %s); retrying one by one",
                len(messages),
                type(exc.orig).__name__,
                str(exc.orig).splitlines()[0][:200] if exc.orig is not None else "",
            )
            outcomes: list[int | Exception] = []
            for m in messages:
                try:
                    outcomes.extend(await self._commit([m]))
                except Exception as row_exc:  # handed to its caller
                    outcomes.append(row_exc)
            return outcomes

    async def _commit(self, messages: list[PendingMessage]) -> list[int]:
        async with self.sessions.begin() as session:
            rows = [m.row() for m in messages]
            if session.get_bind().dialect.name == "sqlite":
                # One multi-row INSERT. SQLite numbers a statement's rows in VALUES order (rowid ids, one
                # writer at a time), so the sorted ids are the rows' ids in order; SQLAlchemy's
                # sort_by_parameter_order would instead run one INSERT per row on SQLite.
                result = await session.execute(insert(Message).returning(Message.id), rows)
                ids = sorted(int(i) for i in result.scalars().all())
            else:  # PostgreSQL: SQLAlchemy orders RETURNING by a sentinel in one statement per batch
                result = await session.execute(
                    insert(Message).returning(Message.id, sort_by_parameter_order=True), rows
                )
                ids = [int(i) for i in result.scalars().all()]
            if len(ids) != len(messages):
                raise RuntimeError(f"inserted {len(messages)} messages, the database returned {len(ids)} ids")
            due: list[int] = []
            for m in messages:
                n = (self._since_retention.get(m.chat_id) or 0) + 1
                if n >= self.retention_every:  # retention is cheap but not free: every N messages a chat
                    due.append(m.chat_id)
                    n = 0
                self._since_retention[m.chat_id] = n
            for chat_id in dict.fromkeys(due):
                await self.retention(session, chat_id)
        return ids
