"""Crash-safe writes shared by checkpoints, feature caches and the teacher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from engine.fsutil import atomic_open


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temp file in the same folder, fsync, then rename: readers never see half a file."""
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)
