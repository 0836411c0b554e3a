"""Captions written on stickers, read with RapidOCR (PP-OCR models shipped inside ``rapidocr-onnxruntime``).

Off by default (`STICKERPICK_OCR_CAPTIONS=true` turns it on): OCR costs ~0.1-1 s per sticker on a CPU, once, at
import time. The caption becomes part of the sticker's text (`engine.preprocess.sticker_text`), which models
with sticker text read.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from PIL import Image

from engine.preprocess import clean_text, flatten_alpha

MIN_CONFIDENCE = 0.6
MAX_SIDE = 512
MAX_CAPTION_CHARS = 200


class CaptionReader:
    def __init__(self) -> None:
        self._ocr: Any = None
        self._lock = threading.Lock()

    def _engine(self) -> Any:
        with self._lock:
            if self._ocr is None:
                try:
                    from rapidocr_onnxruntime import RapidOCR
                except ImportError as exc:  # pragma: no cover - depends on the install
                    raise RuntimeError(
                        "STICKERPICK_OCR_CAPTIONS needs the package rapidocr-onnxruntime (pip install '.[ocr]')"
                    ) from exc
                self._ocr = RapidOCR()
            return self._ocr

    def read(self, image: Image.Image) -> str | None:
        """The text on a sticker (lines joined, confident ones only), or None."""
        still = flatten_alpha(image)
        if max(still.size) > MAX_SIDE:
            still.thumbnail((MAX_SIDE, MAX_SIDE))
        result, _ = self._engine()(np.asarray(still))
        lines = [str(text) for _box, text, score in (result or []) if float(score) >= MIN_CONFIDENCE]
        caption = clean_text(" ".join(lines))[:MAX_CAPTION_CHARS]
        return caption or None
