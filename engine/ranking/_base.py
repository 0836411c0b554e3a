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


@runtime_checkable
class PackRanker(Protocol):
    """A ranker whose sticker vectors may depend on the rest of the sticker's pack (``names_per_pack``): the
    engine then embeds each pack whole, in two steps, so that a pack of thousands never holds its pictures in
    memory at once: image vectors a batch at a time (kept under ``image_key``), then every sticker of the pack
    fused together."""

    @property
    def names_per_pack(self) -> bool: ...

    @property
    def image_key(self) -> str:
        """What the image vectors depend on (the image tower and its preprocessing): they are stored under
        it, so a pack that grows runs the image tower on its new stickers only."""
        ...

    def image_vectors(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, d) image-only vectors."""
        ...

    def fuse_stickers(self, image: np.ndarray, stickers: Sequence[StickerInput]) -> np.ndarray:
        """(n, d) float32, L2-normalised: one whole pack's vectors from its image vectors and texts."""
        ...


def per_pack(ranker: object) -> PackRanker | None:
    """``ranker`` when its sticker vectors must be computed a whole pack at a time, else None."""
    if isinstance(ranker, PackRanker) and ranker.names_per_pack:
        return ranker
    return None


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
