"""Time-bounded decoding: ``decode_sticker_bounded`` and ``decode_sticker_async``.

Design. What bounds time is a process that can be killed, not a thread (a thread stuck in C code, in
libpng, rlottie or libvpx, cannot be stopped and would keep its core and memory). So every decode that gets
past the cheap checks (empty, ``max_bytes``, unknown magic: done in the caller, no IPC) runs in a small pool
of long-lived worker processes:

* ``min(2, cpu_count)`` workers, each a ``multiprocessing`` process with one duplex pipe. A job is
  ``(function, args)``; the caller sends it, waits on the pipe with ``poll(timeout_s)``, and on silence
  **kills that worker** and raises :class:`DecodeTimeout`. The slot gets a fresh worker on its next job, so
  the timeout never includes a worker's start-up (started outside the clock, handshake bounded separately).
* A worker that dies mid-job (a segfault in a native decoder on a crafted file) is a :class:`CorruptMedia`
  for that file; its slot restarts as above. The caller never sees BrokenProcessPool-style pool failures.
* Start method ``forkserver`` where available (``spawn`` elsewhere), never ``fork``: the bot's process has
  threads (asyncio, onnxruntime, the DB driver) and forking it is unsafe. The fork server preloads
  ``__main__`` and the decoder modules (Pillow, PyAV, rlottie) once, so a (re)started worker is a cheap fork.
* ``concurrent.futures.ProcessPoolExecutor`` was not used: on Python 3.11 it has no public way to kill a
  worker that is running a job (``terminate_workers`` is 3.14), a timed-out future keeps its worker busy,
  and its futures' clocks include worker start-up.
* All formats go through the pool, not only .tgs/.webm: a first frame of a progressive JPEG or a 16 MP PNG
  is cheap only on well-behaved input, and one code path is easier to reason about. The cost is one pipe
  round trip per sticker: measured ~4 ms on top of a ~4 ms decode for a 512×512 PNG (1 MiB of pixels back).

``decode_sticker_async`` runs the bounded decode on a small dedicated thread pool (one thread per worker), so
waiting for a worker never blocks the event loop nor fills the loop's default executor. Cancelling the
awaiting task does not stop the decode; it still ends within ``timeout_s``.

As with any use of ``multiprocessing`` outside ``fork``, a *script* that calls the bounded decoders must guard
its entry point with ``if __name__ == "__main__":`` (the ``stickerpick`` console script is): workers import
the main module as ``__mp_main__`` (once, in the fork server, for a script path; at each worker start for
``python -m``, which costs start-up time and memory but no behaviour).

Timeouts have the resolution of ``poll`` on the pipe, about a millisecond.

Process-wide state: the pool is created lazily, recreated in a forked child (pid check), and shut down at
interpreter exit. ``set_forkserver_preload`` is process-global; it only takes effect if this module is the
first to start the fork server, otherwise workers import the decoders on their first job.
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing
import os
import queue
import signal
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from engine.media._decode import check_input, decode_sticker
from engine.media._errors import CorruptMedia, DecoderUnavailable, DecodeTimeout, MediaTooLarge, describe
from engine.media._types import DecodedSticker, DecodeLimits

POOL_SIZE = max(1, min(2, os.cpu_count() or 1))
# Each decoder worker's memory (its data segment: heap and anonymous mappings). The input limits keep a good
# decode far below it (a 4096×4096 RGBA frame is 64 MiB); this bounds what a decoder bug or a crafted file
# could allocate.
WORKER_MEMORY_BYTES = 1 << 30
STARTUP_TIMEOUT_S = 60.0
_PRELOAD = [
    "__main__",
    "engine.media._bounded",
    "engine.media._raster",
    "engine.media._lottie",
    "engine.media._video",
    "av",
    "rlottie_python",
]


def decode_sticker_bounded(data: bytes, limits: DecodeLimits = DecodeLimits()) -> DecodedSticker:
    """:func:`decode_sticker` in a worker process that is killed after ``limits.timeout_s`` seconds.

    Blocks the calling thread. Raises :class:`DecodeTimeout` past the timeout, :class:`CorruptMedia` if the
    decoder crashed, any other :class:`MediaError` from the decode itself.
    """
    check_input(data, limits)  # the cheap refusals need no worker
    return run_bounded(_decode_still, (bytes(data), limits), limits.timeout_s)


# What comes back into the caller's process (which has no memory cap) is bounded by area, so a hostile image
# cannot exhaust the bot's memory. A still larger than this box on either side is scaled down in the worker
# (aspect kept): a 31 KB PNG of 1×16,000,000 pixels was a 64 MB still, and its copies took 1.2 GB in the main
# process. Stickers are at most 512 px.
MAX_STILL_SIDE = 1024


def _decode_still(data: bytes, limits: DecodeLimits) -> DecodedSticker:
    from dataclasses import replace

    from PIL import Image

    decoded = decode_sticker(data, limits)
    image = decoded.image
    if max(image.size) <= MAX_STILL_SIDE:
        return decoded
    w, h = image.size
    scale = MAX_STILL_SIDE / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return replace(decoded, image=image.resize(size, Image.Resampling.BOX))


async def decode_sticker_async(data: bytes, limits: DecodeLimits = DecodeLimits()) -> DecodedSticker:
    """:func:`decode_sticker_bounded` off the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_get_pool().threads, decode_sticker_bounded, data, limits)


def run_bounded(fn: Callable[..., Any], args: tuple[Any, ...], timeout_s: float) -> Any:
    """Run ``fn(*args)`` in a pool worker, killing it after ``timeout_s``. ``fn`` must be picklable by name."""
    return _get_pool().run(fn, args, timeout_s)


class _Overrun(Exception):
    pass


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=_worker_main, args=(child_conn,), name="stickerpick-media-decoder", daemon=True
        )
        try:
            self.process.start()
        except Exception as exc:  # e.g. inside a daemonic process, or out of PIDs
            self.conn.close()
            child_conn.close()
            raise DecoderUnavailable(f"the sticker decoder could not start ({describe(exc)})") from None
        child_conn.close()
        try:
            ready = self.conn.poll(STARTUP_TIMEOUT_S) and self.conn.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise DecoderUnavailable("the sticker decoder process did not start")

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], timeout_s: float) -> tuple[str, Any]:
        self.conn.send((fn, args))
        if not self.conn.poll(timeout_s):
            raise _Overrun
        return self.conn.recv()

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        try:
            self.conn.send(None)
            self.process.join(1.0)
        except (OSError, ValueError):
            pass
        self.kill()

    def kill(self) -> int | None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5.0)
        self.conn.close()
        return self.process.exitcode


class _Pool:
    def __init__(self, size: int) -> None:
        self.pid = os.getpid()
        self.ctx = _mp_context()
        self.slots: queue.SimpleQueue[_Worker | None] = queue.SimpleQueue()
        for _ in range(size):
            self.slots.put(None)
        self.workers: set[_Worker] = set()
        self.lock = threading.Lock()
        self.threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="media-decode")

    def run(self, fn: Callable[..., Any], args: tuple[Any, ...], timeout_s: float) -> Any:
        worker = self.slots.get()
        try:
            if worker is not None and not worker.alive():
                self._discard(worker)
                worker = None
            if worker is None:
                worker = _Worker(self.ctx)
                with self.lock:
                    self.workers.add(worker)
            try:
                status, value = worker.call(fn, args, timeout_s)
            except _Overrun:
                self._discard(worker)
                worker = None
                raise DecodeTimeout(
                    f"decoding the file took longer than {timeout_s:g} s and was stopped"
                ) from None
            except (EOFError, OSError):  # the worker died: a crash in native code, or it was killed
                code = self._discard(worker)
                worker = None
                raise CorruptMedia(f"the decoder crashed on this file (exit code {code})") from None
            except (
                BaseException
            ):  # e.g. KeyboardInterrupt mid-wait: its late reply must not answer the next job
                self._discard(worker)
                worker = None
                raise
        finally:
            self.slots.put(worker)
        if status == "ok":
            return value
        raise value

    def _discard(self, worker: _Worker) -> int | None:
        with self.lock:
            self.workers.discard(worker)
        return worker.kill()

    def shutdown(self) -> None:
        with self.lock:
            workers, self.workers = list(self.workers), set()
        for worker in workers:
            worker.stop()
        self.threads.shutdown(wait=False, cancel_futures=True)


def _mp_context() -> Any:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def _cap_memory(limit: int) -> None:
    """Cap this worker's data segment (heap and anonymous mappings): a decoder that tries to allocate past it
    gets a MemoryError (or dies) instead of taking the machine's memory."""
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        cap = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    except (ImportError, ValueError, OSError):  # not POSIX, or not allowed: the time bound still holds
        pass


def _worker_main(conn: Connection) -> None:
    """A worker's loop: receive ``(fn, args)``, reply ``("ok", result)`` or ``("err", exception)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle; it stops us
    _cap_memory(WORKER_MEMORY_BYTES)
    from PIL import Image

    warnings.simplefilter("error", Image.DecompressionBombWarning)  # our own process: safe to set
    conn.send("ready")
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the parent went away
            return
        if job is None:
            return
        fn, args = job
        try:
            reply: tuple[str, Any] = ("ok", fn(*args))
        except MemoryError:
            reply = (
                "err",
                MediaTooLarge(
                    f"decoding the file needed more than {WORKER_MEMORY_BYTES >> 20} MiB of memory"
                ),
            )
        except BaseException as exc:
            reply = ("err", exc)
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result or exception; nothing was written yet
            conn.send(("err", CorruptMedia(f"the decoder's answer could not be sent back ({describe(exc)})")))


_pool: _Pool | None = None
_pool_lock = threading.Lock()


def _get_pool() -> _Pool:
    global _pool
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():  # a forked child must not share its parent's workers
            _pool = _Pool(POOL_SIZE)
        return _pool


@atexit.register
def shutdown_pool() -> None:
    """Stop the worker processes (also runs at interpreter exit); the next bounded decode starts new ones."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None and pool.pid == os.getpid():
        pool.shutdown()
