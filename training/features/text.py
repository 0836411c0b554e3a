"""Cached text features: the frozen part of the text tower, per distinct text (pooled, or the hidden states
entering the first trainable layer), and the dialogues' VADER polarities."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from engine.preprocess import TextTokenizer
from training._io import atomic_torch_save
from training.features.cache import (
    CACHE_FORMAT,
    FeatureCache,
    frozen_prefix_digest,
    key_of,
    module_digest,
    texts_digest,
)


def run_bert_layers(bert: nn.Module, hidden: Tensor, attention_mask: Tensor, start: int, end: int) -> Tensor:
    """Run BERT layers ``start`` … ``end``-1 on ``hidden`` (B, T, H) with a 0/1 mask (B, T)."""
    ext = bert.get_extended_attention_mask(attention_mask, tuple(attention_mask.shape))
    ext = ext.to(hidden.dtype)
    for layer in bert.encoder.layer[start:end]:
        out = layer(hidden, attention_mask=ext)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def bert_embed(bert: nn.Module, input_ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    return bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)


@dataclass
class TextFeatures:
    """Per text: ``pooled`` (N, H) float32, or ``hidden`` (sum of lengths, H) fp16 with ``offsets`` (N+1)."""

    pooled: Tensor | None = None
    hidden: Tensor | None = None
    offsets: Tensor | None = None

    def __len__(self) -> int:
        if self.pooled is not None:
            return int(self.pooled.shape[0])
        assert self.offsets is not None
        return int(self.offsets.shape[0]) - 1

    def to_payload(self) -> dict[str, Tensor]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_payload(cls, d: dict[str, Tensor]) -> TextFeatures:
        return cls(**d)

    def pooled_row(self, r: int) -> Tensor:
        assert self.pooled is not None
        return self.pooled[r]

    def hidden_row(self, r: int) -> Tensor:
        """The (length, H) fp16 hidden states of text ``r``."""
        assert self.hidden is not None and self.offsets is not None
        return self.hidden[int(self.offsets[r]) : int(self.offsets[r + 1])]

    def gather_hidden(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """Rows → padded (B, T, H) float32 hidden states and (B, T) 0/1 mask."""
        assert self.hidden is not None and self.offsets is not None
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        lengths = ends - starts
        width = int(lengths.max()) if rows.numel() else 1
        out = torch.zeros(rows.shape[0], width, self.hidden.shape[1])
        mask = torch.zeros(rows.shape[0], width, dtype=torch.long)
        for i, (s, n) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
            out[i, :n] = self.hidden[s : s + n].float()
            mask[i, :n] = 1
        return out, mask


@torch.inference_mode()
def encode_texts(
    bert: nn.Module,
    tokenizer: TextTokenizer,
    texts: Sequence[str],
    max_tokens: int,
    stop_layer: int | None = None,
    batch_size: int = 128,
    desc: str = "text features",
    progress: bool = True,
) -> TextFeatures:
    """``stop_layer`` None: mean-pooled output of all layers; otherwise the hidden states entering that layer.

    Texts are sorted by token count so that batches carry little padding.
    """
    from tqdm import tqdm

    from training.model import mean_pool

    bert.eval()
    n_layers = len(bert.encoder.layer)
    end = n_layers if stop_layer is None else stop_layer
    lengths = [min(tokenizer.count_tokens(t), max_tokens) for t in texts]
    order = np.argsort(lengths, kind="stable")
    # Rows by input position (batches run in length order).
    pooled: dict[int, Tensor] = {}
    hidden: dict[int, Tensor] = {}
    bar = tqdm(total=len(texts), desc=desc, disable=not progress, unit="text", mininterval=2.0)
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer.encode([texts[i] for i in idx], max_tokens=max_tokens)
        ids = torch.from_numpy(enc.input_ids)
        mask = torch.from_numpy(enc.attention_mask)
        types = torch.from_numpy(enc.token_type_ids) if enc.token_type_ids.size else None
        h = run_bert_layers(bert, bert_embed(bert, ids, types), mask, 0, end)
        if stop_layer is None:
            p = mean_pool(h, mask).float()
            for j, i in enumerate(idx):
                pooled[int(i)] = p[j]
        else:
            for j, i in enumerate(idx):
                hidden[int(i)] = h[j, : int(mask[j].sum())].to(torch.float16)
        bar.update(len(idx))
    bar.close()
    h_dim = int(bert.config.hidden_size)
    if stop_layer is None:
        rows = [pooled[i] for i in range(len(texts))]
        return TextFeatures(pooled=torch.stack(rows) if rows else torch.zeros(0, h_dim))
    return _packed([hidden[i] for i in range(len(texts))], h_dim)


def _packed(pieces: list[Tensor], h_dim: int) -> TextFeatures:
    """Variable-length fp16 hidden states, one piece per text, as one flat tensor and its offsets."""
    lens = torch.tensor([int(p.shape[0]) for p in pieces], dtype=torch.long)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lens.cumsum(0)])
    flat = torch.cat(pieces) if pieces else torch.zeros(0, h_dim, dtype=torch.float16)
    return TextFeatures(hidden=flat, offsets=offsets)


@dataclass(eq=False, repr=False)
class TextFeatureStore:
    """Cached text features of one frozen text tower (identity = its weights' digest + the tokenizer file +
    max_tokens + mode), per distinct text: a request computes only the texts no earlier request computed and
    writes them as a new shard (atomically) under ``cache_dir/text-<mode>/<identity>/``."""

    cache: FeatureCache
    bert: nn.Module
    tokenizer: TextTokenizer
    tokenizer_digest: str
    max_tokens: int
    stop_layer: int | None
    progress: bool = True
    identity: dict[str, Any] = field(init=False)
    kind: str = field(init=False)
    dir: Path = field(init=False)
    _rows: dict[str, tuple[int, int]] = field(init=False, default_factory=dict)  # text digest -> (shard, row)
    _shards: list[TextFeatures] = field(init=False, default_factory=list)
    _loaded: set[str] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        bert, stop_layer = self.bert, self.stop_layer
        self.identity = {
            "format": CACHE_FORMAT,
            # Only what computes the cached values: the whole tower for pooled outputs, the embeddings and the
            # layers below ``stop_layer`` for hidden states (the trainable top layers may differ freely, so a
            # fine-tune from another checkpoint of the same base reuses the cache).
            "bert": module_digest(bert) if stop_layer is None else frozen_prefix_digest(bert, stop_layer),
            "tokenizer": self.tokenizer_digest,
            **({"preparation": prep} if (prep := getattr(self.tokenizer, "preparation", "")) else {}),
            "max_tokens": self.max_tokens,
            "stop_layer": stop_layer,
        }
        self.kind = "text-pooled" if stop_layer is None else "text-hidden"
        self.dir = self.cache.root / self.kind / key_of(self.identity)[:32]

    def _load_shards(self) -> None:
        if not self.cache.enabled or not self.dir.is_dir():
            return
        for path in sorted(self.dir.glob("*.pt")):
            if path.name in self._loaded:
                continue
            payload = torch.load(path, map_location="cpu", weights_only=True)
            self._add_shard(payload["digests"], TextFeatures.from_payload(payload["features"]))
            self._loaded.add(path.name)

    def _add_shard(self, digests: list[str], feats: TextFeatures) -> None:
        k = len(self._shards)
        self._shards.append(feats)
        for r, d in enumerate(digests):
            self._rows.setdefault(d, (k, r))

    def features(self, texts: Sequence[str], desc: str = "text features") -> TextFeatures:
        digests = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        self._load_shards()
        missing: dict[str, str] = {}
        for d, t in zip(digests, texts, strict=True):
            if d not in self._rows and d not in missing:
                missing[d] = t
        if missing:
            feats = encode_texts(
                self.bert,
                self.tokenizer,
                list(missing.values()),
                self.max_tokens,
                self.stop_layer,
                desc=desc,
                progress=self.progress,
            )
            new_digests = list(missing)
            if self.cache.enabled:
                name = f"{key_of({'texts': new_digests})[:32]}.pt"
                atomic_torch_save({"digests": new_digests, "features": feats.to_payload()}, self.dir / name)
                self._loaded.add(name)
            self._add_shard(new_digests, feats)
            self.cache.builds[self.kind] = self.cache.builds.get(self.kind, 0) + 1
        else:
            self.cache.hits[self.kind] = self.cache.hits.get(self.kind, 0) + 1
        return self._assemble([self._rows[d] for d in digests])

    def _assemble(self, where: list[tuple[int, int]]) -> TextFeatures:
        h = int(self.bert.config.hidden_size)
        if self.stop_layer is None:
            rows = [self._shards[k].pooled_row(r) for k, r in where]
            return TextFeatures(pooled=torch.stack(rows) if rows else torch.zeros(0, h))
        return _packed([self._shards[k].hidden_row(r) for k, r in where], h)


def dialogue_polarities(cache: FeatureCache, texts: Sequence[str]) -> Tensor:
    """VADER polarity (N, 3) of each dialogue, cached."""
    from training.losses import dialogue_polarity

    parts = {"texts": texts_digest(texts), "n": len(texts), "method": "vader-last2"}
    return cache.get("vader", parts, lambda: dialogue_polarity(list(texts)))
