"""The ranker interface: what the service needs from any model (baseline, PBR, future ones)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from engine.errors import ModelMissing as ModelMissing  # defined with the other typed errors; re-exported


@dataclass(frozen=True)
class StickerInput:
    """Everything a model may read about one sticker."""

    image: Image.Image | None
    emoji: str | None = None
    tags: Sequence[str] = field(default_factory=tuple)
    caption: str | None = None


@runtime_checkable
class Ranker(Protocol):
    """Dual-encoder ranking: stickers are embedded once (cached by ``version``), dialogues per request."""

    name: str
    version: str
    needs_images: bool

    def embed_dialogues(self, texts: Sequence[str]) -> np.ndarray:
        """(n, d) float32, L2-normalised."""
        ...

    def embed_stickers(self, stickers: Sequence[StickerInput]) -> np.ndarray:
        """(n, d) float32, L2-normalised."""
        ...

    def dialogue_text(self, turns: Sequence[str]) -> str:
        """The dialogue as this model reads it (turn selection and formatting)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens this model's tokenizer makes of ``text`` (the history window's token budget)."""
        ...


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first (argpartition: linear in the number of stickers)."""
    n = scores.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k < n:
        part = np.argpartition(-scores, k - 1)[:k]
    else:
        part = np.arange(n)
    return part[np.argsort(-scores[part], kind="stable")]
