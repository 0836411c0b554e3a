"""File-system helpers every layer shares: the write that a killed process cannot leave half-done, and hashing.

``atomic_write`` is the one temp-file-then-rename writer: it writes beside the target (same file system, so the
rename is atomic), flushes and fsyncs, then ``os.replace``\\ s; on any failure the temp file is removed and the
old target, if any, is untouched. Training and export import this module too (it has no dependencies beyond
the standard library).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_open", "atomic_write", "atomic_write_bytes", "atomic_write_text", "sha256_file"]


@contextmanager
def atomic_open(path: Path | str, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on a clean exit it replaces ``path``, on an error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: Path | str, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(f)`` on a binary temp file beside ``path``, then move it into place atomically."""
    with atomic_open(path, "wb") as f:
        write(f)
    return Path(path)


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path | str, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: Path | str) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
