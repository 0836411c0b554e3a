"""The feature cache: entries keyed by a SHA-256 of everything that determines them, and the digests of
weights, texts and files those keys are built from; the emotion teacher is cached here too."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from training._io import atomic_torch_save

CACHE_FORMAT = 1


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hash_tensor(h: Any, name: str, t: Tensor) -> None:
    """Feed one named tensor (name, dtype, shape, bytes) into a running SHA-256."""
    t = t.detach().cpu().contiguous()
    h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def _state_digest(module: nn.Module, header: str = "", prefixes: tuple[str, ...] | None = None) -> str:
    """SHA-256 of ``header`` and the module's state-dict tensors (all, or those whose names start with one
    of ``prefixes``), in name order."""
    h = hashlib.sha256(header.encode())
    for name, t in sorted(module.state_dict().items()):
        if prefixes is None or name.startswith(prefixes):
            _hash_tensor(h, name, t)
    return h.hexdigest()


def module_digest(module: nn.Module) -> str:
    """Identity of a module's weights: SHA-256 over its state dict (names, dtypes, shapes, bytes)."""
    return _state_digest(module)


def frozen_prefix_digest(bert: nn.Module, stop_layer: int) -> str:
    """Identity of a BERT's embeddings and encoder layers ``0 .. stop_layer-1`` (what the states entering
    layer ``stop_layer`` depend on)."""
    keep = ("embeddings.", *(f"encoder.layer.{i}." for i in range(stop_layer)))
    return _state_digest(bert, f"stop={stop_layer}|", keep)


def frozen_units_digest(tower: nn.Module) -> str:
    """Identity of the frozen units of a partly trainable tower (what a cached prefix depends on)."""
    units = tuple(f"{u}." for u in getattr(tower, "frozen_units", []))
    return _state_digest(tower, f"units={sorted(units)}|", units)


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
