"""Scorers (``training.evaluate.Scorer``) for PBR models.

* :class:`CheckpointScorer`: a ``.pt`` checkpoint on raw inputs (tokeniser, images), what ``stickerpick eval``
  uses. Sticker embeddings are computed once per unique sticker.
* :class:`CachedScorer`: a model being trained, on the frozen-tower feature caches (validation during
  training, the ablation runner). With frozen towers it computes exactly what the checkpoint would.

Both score with the dual encoder (dialogue · sticker), or with ``rerank=True`` with the matching head over the
candidates. Sticker text is used only when the evaluation's ``sticker_text`` is on AND the model was trained with
``use_sticker_text``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from engine.preprocess import TextTokenizer, image_to_array, sticker_text
from training.data.format import Sample, StickerDataset, alt_mapping, load_sticker_image
from training.model import PBRModel, load_checkpoint


class _EmbeddingScorer:
    name: str
    model: PBRModel
    rerank: bool
    max_turns: int

    def dialogue_embeddings(self, texts: list[str]) -> Tensor:
        raise NotImplementedError

    def sticker_embeddings(self, ids: list[str], dataset: StickerDataset, texts: list[str] | None) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def score(
        self,
        samples: Sequence[Sample],
        candidates: Sequence[Sequence[str]],
        dataset: StickerDataset,
        sticker_text: bool,
    ) -> list[np.ndarray]:
        from training.prepare import sample_text

        self.model.eval()
        unique = sorted({c for cs in candidates for c in cs})
        texts = None
        if sticker_text and self.model.config.use_sticker_text:
            alt = alt_mapping(dataset.index, samples)
            texts = [_sticker_text(alt.get(i)) for i in unique]
        s = self.sticker_embeddings(unique, dataset, texts)
        pos = {sid: i for i, sid in enumerate(unique)}
        d = self.dialogue_embeddings([sample_text(x, self.max_turns) for x in samples])
        out: list[np.ndarray] = []
        for row, cands in zip(d, candidates, strict=True):
            cand = s[[pos[c] for c in cands]]
            if self.rerank:
                sc = self.model.match_logits(row.unsqueeze(0), cand)
            else:
                sc = cand @ row
            out.append(sc.float().cpu().numpy().astype(np.float64))
        return out


def _sticker_text(alt: str | None) -> str:
    return sticker_text(alt)


class CheckpointScorer(_EmbeddingScorer):
    def __init__(
        self,
        model: PBRModel,
        tokenizer: TextTokenizer,
        max_turns: int = 8,
        rerank: bool = False,
        name: str | None = None,
        batch_size: int = 64,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_turns = max_turns
        self.rerank = rerank
        self.batch_size = batch_size
        self.name = name or ("PBR checkpoint" + (" + re-ranking" if rerank else ""))

    @classmethod
    def load(cls, path: Path | str, rerank: bool = False) -> CheckpointScorer:
        from training.build import tokenizer_file

        ckpt = load_checkpoint(path)
        train = ckpt.extra.get("train_config") or {}
        max_turns = int((train.get("data") or {}).get("max_turns", 8))
        tok = TextTokenizer(tokenizer_file(ckpt.config.text_dir), ckpt.config.max_tokens)
        return cls(
            ckpt.model,
            tok,
            max_turns,
            rerank,
            name=f"PBR {Path(path).name}" + (" + re-rank" if rerank else ""),
        )

    def _encode_texts(self, texts: list[str], max_tokens: int) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Token ids, attention mask and token types of ``texts``, in batches."""
        out = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer.encode(texts[i : i + self.batch_size], max_tokens=max_tokens)
            out.append(
                (
                    torch.from_numpy(enc.input_ids),
                    torch.from_numpy(enc.attention_mask),
                    torch.from_numpy(enc.token_type_ids),
                )
            )
        return out

    def dialogue_embeddings(self, texts: list[str]) -> Tensor:
        chunks = [
            self.model.encode_dialogue(ids, mask, tt)
            for ids, mask, tt in self._encode_texts(texts, self.model.config.max_tokens)
        ]
        return torch.cat(chunks) if chunks else torch.zeros(0, self.model.config.embed_dim)

    def sticker_embeddings(self, ids: list[str], dataset: StickerDataset, texts: list[str] | None) -> Tensor:
        spec = self.model.config.image_spec()
        out = []
        for i in range(0, len(ids), self.batch_size):
            chunk = ids[i : i + self.batch_size]
            px = torch.from_numpy(
                np.stack([image_to_array(load_sticker_image(dataset.index.find(c)), spec) for c in chunk])
            )
            text_inputs = None
            if texts is not None:
                t = texts[i : i + self.batch_size]
                enc = self.tokenizer.encode(t, max_tokens=self.model.config.sticker_text_max_tokens)
                text_inputs = {
                    "input_ids": torch.from_numpy(enc.input_ids),
                    "attention_mask": torch.from_numpy(enc.attention_mask),
                    "token_type_ids": torch.from_numpy(enc.token_type_ids),
                    "has_text": torch.tensor([bool(x) for x in t]),
                }
            out.append(self.model.encode_sticker(px, text_inputs))
        return torch.cat(out) if out else torch.zeros(0, self.model.config.embed_dim)


class CachedScorer(_EmbeddingScorer):
    """Scores with a :class:`training.module.PBRTrainModule` on cached frozen-tower features."""

    def __init__(
        self, module: Any, towers: Any, max_turns: int, rerank: bool = False, name: str = "PBR"
    ) -> None:
        self.module = module
        self.model = module.model
        self.towers = towers
        self.max_turns = max_turns
        self.rerank = rerank
        self.name = name + (" + re-ranking" if rerank else "")

    def _text_inputs(self, feats: Any) -> dict[str, Tensor]:
        from training.batching import text_input

        return text_input(feats, torch.arange(len(feats)))

    def dialogue_embeddings(self, texts: list[str]) -> Tensor:
        from training.batching import text_input, text_rows

        distinct, rows = text_rows(texts)
        feats = self.towers.text.features(distinct, desc="val text features")
        out = []
        for i in range(0, len(distinct), 512):
            sub = torch.arange(i, min(i + 512, len(distinct)))
            out.append(self.module.dialogue(text_input(feats, sub)))
        emb = torch.cat(out) if out else torch.zeros(0, self.model.config.embed_dim)
        return emb[torch.tensor(rows, dtype=torch.long)]

    def sticker_embeddings(self, ids: list[str], dataset: StickerDataset, texts: list[str] | None) -> Tensor:
        paths = [dataset.index.find(i) for i in ids]
        img = self.towers.images.features(paths, views=1)[:, 0]
        if texts is None or self.towers.sticker_text is None:
            return self.module.sticker(img)
        feats = self.towers.sticker_text.features(texts, desc="val sticker text")
        has = torch.tensor([bool(t) for t in texts])
        return self.module.sticker(img, self._text_inputs(feats), has)
