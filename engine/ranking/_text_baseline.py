"""The honest baseline: all-MiniLM-L6-v2 (ONNX) compares the dialogue with each sticker's emoji names and tags.

It never looks at pixels: a sticker is its emoji's names (from the ``emoji`` package), its tags and caption.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.errors import ModelKind
from engine.preprocess import dialogue_to_text, sticker_text
from engine.ranking._base import StickerInput
from engine.ranking._onnx import OnnxTextEncoder, read_manifest


class TextBaselineRanker:
    name = "text-baseline"
    needs_images = False

    def __init__(self, model_dir: Path, max_turns: int = 8, threads: int = 0) -> None:
        self.model_dir = Path(model_dir)
        manifest = read_manifest(self.model_dir, ModelKind.BASELINE)
        if manifest.get("kind") != "text-baseline":
            raise ValueError(f"{model_dir} holds a {manifest.get('kind')!r} model, not a text baseline")
        self.manifest = manifest
        self.version: str = manifest["version"]
        self.max_turns = max_turns
        self.encoder = OnnxTextEncoder(
            self.model_dir / manifest["files"]["text"],
            self.model_dir / manifest["files"]["tokenizer"],
            int(manifest.get("max_tokens", 128)),
            manifest.get("output", "sentence_embedding"),
            threads,
        )

    def dialogue_text(self, turns: Sequence[str]) -> str:
        return dialogue_to_text(turns, self.max_turns)

    def count_tokens(self, text: str) -> int:
        return self.encoder.tokenizer.count_tokens(text)

    def embed_dialogues(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(list(texts))

    def embed_stickers(self, stickers: Sequence[StickerInput]) -> np.ndarray:
        texts = [sticker_text(s.emoji, s.tags, s.caption) or "sticker" for s in stickers]
        return self.encoder.encode(texts)
