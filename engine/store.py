"""Content-addressed media store: each decoded still once, as media/<sha[:2]>/<sha>.png, written atomically."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from PIL import Image

from engine.fsutil import atomic_write_bytes


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.png"

    def put(self, png: bytes) -> str:
        sha = hashlib.sha256(png).hexdigest()
        target = self.path(sha)
        if target.is_file():
            return sha
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, png)
        return sha

    def sweep_temp(self, older_than_s: float = 3600.0) -> int:
        """Delete temp files that a killed writer left behind. A live writer's temp file exists for
        milliseconds, so only those older than ``older_than_s`` go. Returns how many were removed."""
        removed = 0
        cutoff = time.time() - older_than_s
        for tmp in self.root.glob("*/.*.tmp"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:  # another process swept or renamed it
                pass
        return removed

    def open(self, sha256: str) -> Image.Image:
        with Image.open(self.path(sha256)) as im:
            im.load()
            return im.copy()

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()
