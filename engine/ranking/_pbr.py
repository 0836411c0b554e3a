"""The PBR model served through onnxruntime: dialogue tower, image tower, sticker-text fusion, re-ranking.

Reads a model directory written by the exporter (export/pbr.py describes its layout). The numpy parts
(projection after pooling, the sticker-text gate) are the exact operations of training/model/_pbr.py.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ModelKind
from engine.preprocess import ImageSpec, dialogue_to_text, images_to_batch, sticker_text
from engine.ranking._base import StickerInput, l2_normalise
from engine.ranking._onnx import OnnxTextEncoder, make_session, read_manifest


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class PBRRanker:
    name = "pbr"
    needs_images = True

    def __init__(
        self, model_dir: Path, max_turns: int = 8, threads: int = 0, sticker_text_on: bool | None = None
    ):
        self.model_dir = Path(model_dir)
        manifest = read_manifest(self.model_dir, ModelKind.PBR)
        if manifest.get("kind") != "pbr":
            raise ValueError(f"{model_dir} holds a {manifest.get('kind')!r} model, not a PBR model")
        self.manifest = manifest
        self.version: str = manifest["version"]
        self.max_turns = max_turns
        files = manifest["files"]
        self.text = OnnxTextEncoder(
            self.model_dir / files["text"],
            self.model_dir / files["tokenizer"],
            int(manifest.get("max_tokens", 64)),
            "last_hidden_state",
            threads,
        )
        # The image tower runs only when stickers are indexed: loaded on first use (a serving bot
        # whose library is embedded never pays its memory).
        self._image_path = self.model_dir / files["image"]
        self._threads = threads
        self._image: Any = None
        self._image_lock = threading.Lock()
        self.match = make_session(self.model_dir / files["match"], threads)
        heads = np.load(self.model_dir / files["heads"])
        self.heads = {k: heads[k] for k in heads.files}
        self.spec = ImageSpec.from_dict(manifest["image"])
        self.use_sticker_text = (
            bool(manifest.get("use_sticker_text"))
            if sticker_text_on is None
            else (sticker_text_on and bool(manifest.get("use_sticker_text")))
        )
        self.sticker_text_max_tokens = int(manifest.get("sticker_text_max_tokens", 32))

    def image_session(self) -> Any:
        with self._image_lock:
            if self._image is None:
                self._image = make_session(self._image_path, self._threads)
            return self._image

    # -- the Ranker protocol ---------------------------------------------------------------------------
    def dialogue_text(self, turns: Sequence[str]) -> str:
        return dialogue_to_text(turns, self.max_turns)

    def count_tokens(self, text: str) -> int:
        return self.text.tokenizer.count_tokens(text)

    def _project(self, pooled: np.ndarray, name: str) -> np.ndarray:
        return pooled @ self.heads[f"{name}.weight"].T + self.heads[f"{name}.bias"]

    def embed_dialogues(self, texts: Sequence[str]) -> np.ndarray:
        pooled = self.text.encode(list(texts), normalise=False)
        return l2_normalise(self._project(pooled, "text_proj"))

    def embed_images(self, images: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """(L2-normalised image embeddings, emotion logits)."""
        batch = images_to_batch(images, self.spec)
        emb, emotion = self.image_session().run(["sticker_embedding", "emotion_logits"], {"pixels": batch})
        return emb.astype(np.float32), emotion.astype(np.float32)

    def embed_stickers(self, stickers: Sequence[StickerInput]) -> np.ndarray:
        if any(s.image is None for s in stickers):
            raise ValueError("the PBR model needs every sticker's image")
        image, _ = self.embed_images([s.image for s in stickers])
        if not self.use_sticker_text:
            return image
        texts = [sticker_text(s.emoji, s.tags, s.caption) for s in stickers]
        has_text = np.array([bool(t) for t in texts])
        if not has_text.any():
            return image
        pooled = self.text.encode(texts, normalise=False, max_tokens=self.sticker_text_max_tokens)
        text = l2_normalise(self._project(pooled, "sticker_text_proj"))
        gate = _sigmoid(self._project(np.concatenate([image, text], axis=1), "text_gate"))
        gate = np.where(has_text[:, None], gate, 1.0)
        return l2_normalise(gate * image + (1 - gate) * text)

    # -- re-ranking ------------------------------------------------------------------------------------
    def rerank_scores(self, dialogue: np.ndarray, stickers: np.ndarray) -> np.ndarray:
        """Matching-head logits of one dialogue vector against K sticker vectors."""
        d = np.repeat(dialogue[None, :].astype(np.float32), stickers.shape[0], axis=0)
        (logits,) = self.match.run(["match_logit"], {"dialogue": d, "sticker": stickers.astype(np.float32)})
        return logits.reshape(-1)
