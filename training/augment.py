"""Sticker augmentation on normalised image batches (torch only, batched, differentiable-free).

Two independent calls give the two views for intra-topic contrastive learning. Pixels are expected as produced by
``engine.preprocess.image_to_array`` (normalised with ``ImageSpec.mean/std``); the result uses the same
normalisation. Areas that a crop or rotation uncovers are filled with the sticker background (white).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image, ImageChops, ImageFilter, ImageOps
from torch import Tensor

from engine.preprocess import ImageSpec

_GRAY = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class AugmentConfig:
    scale: tuple[float, float] = (0.6, 1.0)  # crop area, as a fraction of the image
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop aspect ratio
    flip_p: float = 0.5
    max_rotation_deg: float = 15.0
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    # Style-removing renderings (:func:`style_view`), applied to this fraction of the augmented views before
    # the geometric/colour jitter: grayscale, posterised, outline-only, the white sticker stroke, random
    # backgrounds. They take away the cues (palette, shading, line weight) that tell one art style from another.
    style_p: float = 0.6


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=generator) * (hi - lo) + lo


def augment_images(
    pixels: Tensor,
    config: AugmentConfig = AugmentConfig(),
    spec: ImageSpec = ImageSpec(),
    generator: torch.Generator | None = None,
) -> Tensor:
    """(N, 3, H, W) → (N, 3, H, W): random resized crop, horizontal flip, small rotation, colour jitter."""
    n = pixels.shape[0]
    dev, dtype = pixels.device, pixels.dtype
    mean = torch.tensor(spec.mean, device=dev, dtype=dtype).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=dev, dtype=dtype).view(1, 3, 1, 1)
    background = torch.tensor(spec.background, device=dev, dtype=dtype).view(1, 3, 1, 1) / 255.0
    x = pixels * std + mean  # [0, 1]

    # Geometry: one affine map per image (output coords → input coords, both in [-1, 1]).
    area = _uniform(n, *config.scale, generator)
    log_r = _uniform(n, math.log(config.ratio[0]), math.log(config.ratio[1]), generator)
    ratio = log_r.exp()
    w = (area * ratio).sqrt().clamp(max=1.0)
    h = (area / ratio).sqrt().clamp(max=1.0)
    tx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - w)
    ty = (torch.rand(n, generator=generator) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(n, generator=generator) < config.flip_p, -1.0, 1.0)
    angle = _uniform(n, -config.max_rotation_deg, config.max_rotation_deg, generator) * math.pi / 180
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack(
        [
            torch.stack([cos * w * flip, -sin * h, tx], dim=1),
            torch.stack([sin * w * flip, cos * h, ty], dim=1),
        ],
        dim=1,
    ).to(device=dev, dtype=dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = (
        F.grid_sample(x - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        + background
    )

    # Colour jitter: brightness, contrast, saturation (fixed order).
    gray_w = torch.tensor(_GRAY, device=dev, dtype=dtype).view(1, 3, 1, 1)
    b = _uniform(n, 1 - config.brightness, 1 + config.brightness, generator).to(dev, dtype).view(n, 1, 1, 1)
    x = (x * b).clamp(0, 1)
    c = _uniform(n, 1 - config.contrast, 1 + config.contrast, generator).to(dev, dtype).view(n, 1, 1, 1)
    m = (x * gray_w).sum(1, keepdim=True).mean(dim=(2, 3), keepdim=True)
    x = ((x - m) * c + m).clamp(0, 1)
    s = _uniform(n, 1 - config.saturation, 1 + config.saturation, generator).to(dev, dtype).view(n, 1, 1, 1)
    g = (x * gray_w).sum(1, keepdim=True)
    x = ((x - g) * s + g).clamp(0, 1)
    return (x - mean) / std


# ------------------------------------------------------------------------------------------------ styles
STYLE_VIEWS = ("grayscale", "posterise", "outline", "stroke", "background", "flat")


def _with_background(img: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    bg = Image.new("RGBA", img.size, (*colour, 255))
    bg.alpha_composite(img)
    return bg


def _random_colour(rng: random.Random) -> tuple[int, int, int]:
    if rng.random() < 0.5:  # light, as chat backgrounds mostly are
        return (rng.randint(170, 255), rng.randint(170, 255), rng.randint(170, 255))
    return (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))


def style_view(img: Image.Image, rng: random.Random, kind: str | None = None) -> Image.Image:
    """One style-removing rendering of an RGBA sticker (still RGBA, same size):

    - ``grayscale``: no colour; ``posterise``: 2-3 bits per channel (flat cartoon fills);
    - ``outline``: only the edges, dark on transparent (a line-art drawing of the same thing);
    - ``stroke``: the white outline Telegram stickers carry, on a random background;
    - ``background``: the sticker on a random solid background; ``flat``: shading removed (median blur).
    """
    kind = kind or rng.choice(STYLE_VIEWS)
    rgba = img.convert("RGBA")
    alpha = rgba.getchannel("A")
    if kind == "grayscale":
        gray = ImageOps.grayscale(rgba.convert("RGB")).convert("RGB")
        out = gray.convert("RGBA")
        out.putalpha(alpha)
        return out
    if kind == "posterise":
        out = ImageOps.posterize(rgba.convert("RGB"), rng.choice((2, 3))).convert("RGBA")
        out.putalpha(alpha)
        return out
    if kind == "outline":
        rgb = _with_background(rgba, (255, 255, 255)).convert("L")
        edges = rgb.filter(ImageFilter.FIND_EDGES)
        edges = ImageOps.autocontrast(edges).point(lambda v: 255 if v > 60 else 0)
        shape = alpha.filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 60 else 0)
        lines = ImageChops.lighter(edges, shape)
        if min(lines.size) > 8:  # FIND_EDGES marks the image's frame
            lines = ImageOps.expand(ImageOps.crop(lines, 2), 2, fill=0)
        if rgba.size[0] >= 96:
            lines = lines.filter(ImageFilter.MaxFilter(3))
        out = Image.new("RGBA", rgba.size, (30, 30, 30, 0))
        out.putalpha(lines)
        return out
    if kind == "stroke":
        width = max(1, round(rgba.size[0] * rng.uniform(0.03, 0.06)))
        grown = alpha.filter(ImageFilter.MaxFilter(2 * width + 1))
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 0))
        white.putalpha(grown)
        white.alpha_composite(rgba)
        return _with_background(white, _random_colour(rng))
    if kind == "background":
        return _with_background(rgba, _random_colour(rng))
    if kind == "flat":
        out = rgba.convert("RGB").filter(ImageFilter.MedianFilter(5)).convert("RGBA")
        out.putalpha(alpha)
        return out
    raise ValueError(f"unknown style view {kind!r}; choose from {', '.join(STYLE_VIEWS)}")
