"""Cached image features: the frozen image tower's features (or the maps entering its first trainable block)
of K views per sticker, view 0 clean and the rest augmented, seeded per sticker."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from engine.fsutil import sha256_file
from engine.preprocess import ImageSpec, image_to_array
from training.augment import AugmentConfig, augment_images
from training.features.cache import FeatureCache, frozen_units_digest, module_digest, texts_digest


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
        feats = torch.cat([_run(tower, batch[i : i + batch_size], stop) for i in range(0, views, batch_size)])
        out.append(feats if stop is not None else feats.float())
    if not out:
        return torch.zeros(0, views, int(getattr(tower, "out_dim", 0)))
    return torch.stack(out)


def _run(tower: nn.Module, pixels: Tensor, stop: int | None) -> Tensor:
    """The whole tower's pooled features, or (``stop``) the fp16 maps entering block ``stop``."""
    if stop is None:
        return tower(pixels)
    # Image towers with trainable blocks define ``prefix(pixels, stop)`` (training.model._towers).
    prefix = cast(Callable[[Tensor, int], Tensor], tower.prefix)
    return prefix(pixels, stop).to(torch.float16)


@dataclass(eq=False, repr=False)
class ImageFeatureStore:
    """Cached features of one image tower. ``stop`` None: pooled features of the whole (frozen) tower; else the
    feature maps entering block ``stop`` (the blocks from there on are trainable, and only the frozen part
    identifies the cache)."""

    cache: FeatureCache
    tower: nn.Module
    spec: ImageSpec
    views: int
    seed: int
    aug: AugmentConfig = field(default_factory=AugmentConfig)
    progress: bool = True
    stop: int | None = None
    chunk: int = 512
    identity: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        stop = self.stop
        self.identity = {
            "tower": module_digest(self.tower) if stop is None else frozen_units_digest(self.tower),
            "spec": self.spec.to_dict(),
            "views": self.views,
            "seed": self.seed,
            "aug": asdict(self.aug),
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
