"""Several statements in one go, for the request paths where the round trips cost more than the queries.

Through aiosqlite every statement is several hops to its thread and back (cursor, execute, fetch, close),
each a wake-up of the event loop: measured here, one 20-row SELECT through an ``AsyncSession`` took 0.46 ms,
the same SELECT on a plain ``sqlite3`` connection 13 µs. :class:`OneShot` runs a function of a synchronous
``Connection`` instead: on a SQLite file, in a worker thread on a synchronous engine of the same file (one hop
for all its statements, the same pragmas as every connection); on any other database (or an in-memory one,
which a second engine would not see), through the async engine's ``run_sync``, statement by statement as
before. ``threaded=False`` forces the second way (the benchmark's baseline).

A request that already runs in a worker thread (/sticker, around its model call) reads and writes from there
with :meth:`OneShot.read_here` and :meth:`OneShot.write_here`, so neither costs a hop of its own. The process's
threaded writes take turns on one lock: its threads wait on that rather than in SQLite's busy handler, which
sleeps 1 ms and more.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncEngine

from engine.db._session import _sqlite_pragmas

T = TypeVar("T")


class OneShot:
    def __init__(self, engine: AsyncEngine, *, threaded: bool | None = None) -> None:
        self.engine = engine
        url = engine.url
        on_file = engine.dialect.name == "sqlite" and bool(url.database) and url.database != ":memory:"
        self.threaded = on_file if threaded is None else (threaded and on_file)
        self._sync: Engine | None = None
        self._write_lock = threading.Lock()
        if self.threaded:
            # the same file through the standard library's driver; its pool keeps one connection per
            # worker thread that used it (SQLAlchemy's default for a SQLite file)
            self._sync = create_sync_engine(url.set(drivername="sqlite"), hide_parameters=True)
            event.listen(self._sync, "connect", _sqlite_pragmas)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` outside any write: nothing it does is committed."""
        if self._sync is not None:
            return await asyncio.to_thread(self._read_sync, fn, *args)
        async with self.engine.connect() as conn:
            return await conn.run_sync(fn, *args)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` in one transaction, committed before this returns (rolled back when it
        raises)."""
        if self._sync is not None:
            return await asyncio.to_thread(self._write_sync, fn, *args)
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn, *args)

    def read_here(self, fn: Callable[..., T], *args: Any) -> T:
        """:meth:`read` run in the calling thread: a worker thread, never the event loop. Only where
        ``threaded`` (a SQLite file)."""
        if self._sync is None:
            raise RuntimeError("read_here needs a SQLite file; elsewhere use read()")
        return self._read_sync(fn, *args)

    def write_here(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` in one transaction, committed before this returns, run in the calling
        thread: a worker thread, never the event loop. Only where ``threaded`` (a SQLite file)."""
        if self._sync is None:
            raise RuntimeError("write_here needs a SQLite file; elsewhere use write()")
        return self._write_sync(fn, *args)

    def _read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._sync is not None
        with self._sync.connect() as conn:
            return fn(conn, *args)

    def _write_sync(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._sync is not None
        with self._write_lock, self._sync.begin() as conn:
            return fn(conn, *args)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.dispose()
