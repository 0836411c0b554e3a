"""Feature caches: what does not change during training is computed once and reused across runs.

* Text: the frozen part of the text tower, per distinct text. Mode ``pooled`` (``text_trainable_layers=0``):
  the mean-pooled last hidden state (H floats). Mode ``hidden`` (``text_trainable_layers=N>0``): the hidden
  states entering layer L−N (fp16, variable length, tokenised with the engine tokenizer's left truncation) plus
  nothing else: the attention mask of a row is all ones over its length.
* Images: frozen image-tower features of K views per sticker (view 0 clean, views 1.. from
  :func:`training.augment.augment_images`, seeded per sticker).
* The emotion teacher, fitted on the training stickers' clean features.

Every entry is keyed by a SHA-256 of everything that determines it (tower weights, preprocessing spec, the texts or
image bytes, parameters), written atomically (temp file, then rename) under ``cache_dir/<kind>/``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from engine.fsutil import sha256_file
from engine.preprocess import ImageSpec, TextTokenizer, image_to_array
from training._io import atomic_torch_save
from training.augment import AugmentConfig, augment_images

CACHE_FORMAT = 1


# ------------------------------------------------------------------------------------------------ hashing
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def module_digest(module: nn.Module) -> str:
    """Identity of a module's weights: SHA-256 over its state dict (names, dtypes, shapes, bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def frozen_prefix_digest(bert: nn.Module, stop_layer: int) -> str:
    """Identity of a BERT's embeddings and encoder layers ``0 .. stop_layer-1`` (what the states entering
    layer ``stop_layer`` depend on)."""
    keep = ("embeddings.", *(f"encoder.layer.{i}." for i in range(stop_layer)))
    h = hashlib.sha256(f"stop={stop_layer}|".encode())
    for name, t in sorted(bert.state_dict().items()):
        if not name.startswith(keep):
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def frozen_units_digest(tower: nn.Module) -> str:
    """Identity of the frozen units of a partly trainable tower (what a cached prefix depends on)."""
    units = tuple(f"{u}." for u in getattr(tower, "frozen_units", []))
    h = hashlib.sha256(f"units={sorted(units)}|".encode())
    for name, t in sorted(tower.state_dict().items()):
        if not name.startswith(units):
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def texts_digest(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(hashlib.sha256(t.encode("utf-8")).digest())
    return h.hexdigest()


def key_of(parts: dict[str, Any]) -> str:
    return sha256_bytes(json.dumps(parts, sort_keys=True, default=str).encode("utf-8"))


class FeatureCache:
    """``get(kind, parts, build)``: load ``cache_dir/kind/<sha(parts)>.pt`` or build, save and return it.

    ``builds`` / ``hits`` count what happened (tests use them); ``enabled=False`` always builds, never writes.
    """

    def __init__(self, root: Path | str, enabled: bool = True) -> None:
        self.root = Path(root)
        self.enabled = enabled
        self.builds: dict[str, int] = {}
        self.hits: dict[str, int] = {}
        self._memo: dict[str, Any] = {}

    def path(self, kind: str, parts: dict[str, Any]) -> Path:
        return self.root / kind / f"{key_of({'format': CACHE_FORMAT, 'kind': kind, **parts})}.pt"

    def get(self, kind: str, parts: dict[str, Any], build: Callable[[], Any]) -> Any:
        path = self.path(kind, parts)
        memo_key = str(path)
        if memo_key in self._memo:
            self.hits[kind] = self.hits.get(kind, 0) + 1
            return self._memo[memo_key]
        if self.enabled and path.is_file():
            obj = torch.load(path, map_location="cpu", weights_only=True)
            self.hits[kind] = self.hits.get(kind, 0) + 1
        else:
            obj = build()
            self.builds[kind] = self.builds.get(kind, 0) + 1
            if self.enabled:
                atomic_torch_save(obj, path)
        self._memo[memo_key] = obj
        return obj


# ------------------------------------------------------------------------------------------------ text
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
    pooled: list[Tensor | None] = [None] * len(texts)
    hidden: list[Tensor | None] = [None] * len(texts)
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
                pooled[i] = p[j]
        else:
            for j, i in enumerate(idx):
                hidden[i] = h[j, : int(mask[j].sum())].to(torch.float16)
        bar.update(len(idx))
    bar.close()
    if stop_layer is None:
        h_dim = int(bert.config.hidden_size)
        return TextFeatures(pooled=torch.stack(pooled) if texts else torch.zeros(0, h_dim))  # type: ignore[arg-type]
    lens = torch.tensor([int(x.shape[0]) for x in hidden], dtype=torch.long)  # type: ignore[union-attr]
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lens.cumsum(0)])
    flat = torch.cat(hidden) if texts else torch.zeros(0, int(bert.config.hidden_size), dtype=torch.float16)  # type: ignore[arg-type]
    return TextFeatures(hidden=flat, offsets=offsets)


class TextFeatureStore:
    """Cached text features of one frozen text tower (identity = its weights' digest + the tokenizer file +
    max_tokens + mode), per distinct text: a request computes only the texts no earlier request computed and
    writes them as a new shard (atomically) under ``cache_dir/text-<mode>/<identity>/``."""

    def __init__(
        self,
        cache: FeatureCache,
        bert: nn.Module,
        tokenizer: TextTokenizer,
        tokenizer_digest: str,
        max_tokens: int,
        stop_layer: int | None,
        progress: bool = True,
    ) -> None:
        self.cache = cache
        self.bert = bert
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.stop_layer = stop_layer
        self.progress = progress
        self.identity = {
            "format": CACHE_FORMAT,
            # Only what computes the cached values: the whole tower for pooled outputs, the embeddings and the
            # layers below ``stop_layer`` for hidden states (the trainable top layers may differ freely, so a
            # fine-tune from another checkpoint of the same base reuses the cache).
            "bert": module_digest(bert) if stop_layer is None else frozen_prefix_digest(bert, stop_layer),
            "tokenizer": tokenizer_digest,
            "max_tokens": max_tokens,
            "stop_layer": stop_layer,
        }
        self.kind = "text-pooled" if stop_layer is None else "text-hidden"
        self.dir = cache.root / self.kind / key_of(self.identity)[:32]
        self._rows: dict[str, tuple[int, int]] = {}  # text digest -> (shard, row)
        self._shards: list[TextFeatures] = []
        self._loaded: set[str] = set()

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
        if self.stop_layer is None:
            h = int(self.bert.config.hidden_size)
            if not where:
                return TextFeatures(pooled=torch.zeros(0, h))
            return TextFeatures(pooled=torch.stack([self._shards[k].pooled[r] for k, r in where]))  # type: ignore[index]
        pieces = []
        for k, r in where:
            sh = self._shards[k]
            assert sh.offsets is not None and sh.hidden is not None
            pieces.append(sh.hidden[int(sh.offsets[r]) : int(sh.offsets[r + 1])])
        lens = torch.tensor([p.shape[0] for p in pieces], dtype=torch.long)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lens.cumsum(0)])
        h = int(self.bert.config.hidden_size)
        flat = torch.cat(pieces) if pieces else torch.zeros(0, h, dtype=torch.float16)
        return TextFeatures(hidden=flat, offsets=offsets)


def dialogue_polarities(cache: FeatureCache, texts: Sequence[str]) -> Tensor:
    """VADER polarity (N, 3) of each dialogue, cached."""
    from training.losses import dialogue_polarity

    parts = {"texts": texts_digest(texts), "n": len(texts), "method": "vader-last2"}
    return cache.get("vader", parts, lambda: dialogue_polarity(list(texts)))


# ------------------------------------------------------------------------------------------------ images
def view_pixels(pixels: Tensor, k: int, seed: int, spec: ImageSpec, aug: AugmentConfig) -> Tensor:
    """(3, S, S) clean pixels → (k, 3, S, S): view 0 is the clean image, the rest augmented (seeded)."""
    if k <= 1:
        return pixels.unsqueeze(0)
    g = torch.Generator().manual_seed(seed)
    extra = augment_images(pixels.unsqueeze(0).expand(k - 1, -1, -1, -1).contiguous(), aug, spec, generator=g)
    return torch.cat([pixels.unsqueeze(0), extra])


@torch.inference_mode()
def encode_sticker_views(
    tower: nn.Module,
    images: Sequence[Any],
    digests: Sequence[str],
    spec: ImageSpec,
    views: int,
    seed: int,
    aug: AugmentConfig,
    batch_size: int = 64,
    progress: bool = True,
    stop: int | None = None,
) -> Tensor:
    """PIL images → frozen tower features (N, views, F), or with ``stop`` the feature maps entering block
    ``stop`` (N, views, C, H, W) in fp16. Views 1.. are augmented; a fraction ``aug.style_p`` of them first get
    a style-removing rendering (:func:`training.augment.style_view`)."""
    import random

    from tqdm import tqdm

    from training.augment import style_view

    tower.eval()
    out = []
    for img, digest in tqdm(
        list(zip(images, digests, strict=True)), desc="sticker features", disable=not progress, unit="sticker"
    ):
        px = torch.from_numpy(image_to_array(img, spec))
        view_seed = (seed * 1_000_003 + int(digest[:12], 16)) % (2**62)
        batch = view_pixels(px, views, view_seed, spec, aug)
        if views > 1 and aug.style_p > 0:
            rng = random.Random(view_seed)
            for v in range(1, views):
                if rng.random() < aug.style_p:
                    styled = torch.from_numpy(image_to_array(style_view(img, rng), spec))
                    g = torch.Generator().manual_seed(view_seed + v)
                    batch[v] = augment_images(styled.unsqueeze(0), aug, spec, generator=g)[0]
        run = tower if stop is None else (lambda x: tower.prefix(x, stop).to(torch.float16))  # type: ignore[operator]
        feats = torch.cat([run(batch[i : i + batch_size]) for i in range(0, views, batch_size)])
        out.append(feats if stop is not None else feats.float())
    if not out:
        return torch.zeros(0, views, int(getattr(tower, "out_dim", 0)))
    return torch.stack(out)


class ImageFeatureStore:
    def __init__(
        self,
        cache: FeatureCache,
        tower: nn.Module,
        spec: ImageSpec,
        views: int,
        seed: int,
        aug: AugmentConfig = AugmentConfig(),
        progress: bool = True,
        stop: int | None = None,
        chunk: int = 512,
    ) -> None:
        """``stop`` None: pooled features of the whole (frozen) tower; else the feature maps entering block
        ``stop`` (the blocks from there on are trainable, and only the frozen part identifies the cache)."""
        self.cache = cache
        self.tower = tower
        self.spec = spec
        self.views = views
        self.seed = seed
        self.aug = aug
        self.progress = progress
        self.stop = stop
        self.chunk = chunk
        self.identity = {
            "tower": module_digest(tower) if stop is None else frozen_units_digest(tower),
            "spec": spec.to_dict(),
            "views": views,
            "seed": seed,
            "aug": asdict(aug),
            **({"stop": stop} if stop is not None else {}),
        }

    def features(self, paths: Sequence[Path], views: int | None = None) -> Tensor:
        """(N, views, F) for sticker files (``views=1``: only the clean view, e.g. for evaluation)."""
        from training.data.format import load_sticker_image

        k = self.views if views is None else views
        digests = [sha256_file(p) for p in paths]
        kind = "image-views" if self.stop is None else "image-maps"
        # In chunks, each cached on its own: a run killed while computing them resumes where it stopped.
        pieces = []
        for start in range(0, max(len(paths), 1), self.chunk):
            chunk_paths = list(paths[start : start + self.chunk])
            chunk_digests = digests[start : start + self.chunk]
            parts = {
                **self.identity,
                "views": k,
                "images": texts_digest(chunk_digests),
                "n": len(chunk_paths),
            }

            def build(
                chunk_paths: list[Path] = chunk_paths, chunk_digests: list[str] = chunk_digests
            ) -> Tensor:
                images = [load_sticker_image(p) for p in chunk_paths]
                return encode_sticker_views(
                    self.tower,
                    images,
                    chunk_digests,
                    self.spec,
                    k,
                    self.seed,
                    self.aug,
                    progress=self.progress,
                    stop=self.stop,
                )

            pieces.append(self.cache.get(kind, parts, build))
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)


# ------------------------------------------------------------------------------------------------ teacher
def cached_teacher(
    cache: FeatureCache, clean_features: Tensor, labels: Sequence[int], seed: int, **fit_kwargs: Any
) -> Any:
    """Fit (or load) the emotion teacher on precomputed backbone features of the training stickers."""
    from training.teacher import Teacher, fit_teacher

    feats = clean_features.detach().float().contiguous()
    parts = {
        "features": sha256_bytes(feats.numpy().tobytes()),
        "shape": list(feats.shape),
        "labels": list(map(int, labels)),
        "seed": seed,
        "fit": fit_kwargs,
    }
    path = cache.path("teacher", parts)
    if cache.enabled and path.is_file():
        cache.hits["teacher"] = cache.hits.get("teacher", 0) + 1
        return Teacher.load(path, backbone=nn.Identity())
    teacher = fit_teacher(None, list(labels), features=feats, backbone=nn.Identity(), seed=seed, **fit_kwargs)
    cache.builds["teacher"] = cache.builds.get("teacher", 0) + 1
    if cache.enabled:
        teacher.save(path)
    return teacher
