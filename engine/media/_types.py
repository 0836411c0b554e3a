"""Decode limits and the decoded result."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

from PIL import Image

from engine.media._errors import CorruptMedia, MediaTooLarge

StickerKind = Literal["static", "animated", "video"]


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds on one decode. Every field must be positive; ``timeout_s`` only applies to the bounded decoders."""

    max_bytes: int = 8 * 1024 * 1024  # the encoded file
    max_pixels: int = 4096 * 4096  # width × height, checked from the header before decoding
    max_decompressed_bytes: int = 16 * 1024 * 1024  # gunzipped Lottie JSON of a .tgs
    max_frames: int = 10_000  # Lottie frame range, APNG frame count, WebM packets read
    timeout_s: float = 10.0  # wall clock for decode_sticker_bounded / decode_sticker_async

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"DecodeLimits.{f.name} must be a positive number, got {value!r}")
            if f.name != "timeout_s" and not isinstance(value, int):
                raise ValueError(f"DecodeLimits.{f.name} must be an integer, got {value!r}")
        if not math.isfinite(self.timeout_s):
            raise ValueError(f"DecodeLimits.timeout_s must be finite, got {self.timeout_s!r}")


@dataclass(frozen=True)
class DecodedSticker:
    """One still of a sticker.

    ``image`` is an RGBA still with an empty ``info`` (no ICC/EXIF carried along); ``width``/``height`` are the
    source's own dimensions, which differ from ``image.size`` only for ``tgs`` (rendered at most 512 px).
    """

    image: Image.Image
    kind: StickerKind
    source_format: str  # "png", "apng", "webp", "jpeg", "gif", "tgs", "webm"
    width: int
    height: int


def check_dimensions(width: int, height: int, limits: DecodeLimits, max_pixels: int | None = None) -> None:
    """Refuse a declared size that is empty or past ``max_pixels`` (default ``limits.max_pixels``)."""
    cap = limits.max_pixels if max_pixels is None else min(max_pixels, limits.max_pixels)
    if width <= 0 or height <= 0:
        raise CorruptMedia(f"the file declares an empty image ({width}×{height} pixels)")
    if width * height > cap:
        raise MediaTooLarge(f"image is {width}×{height} pixels; the limit is {cap} pixels")
