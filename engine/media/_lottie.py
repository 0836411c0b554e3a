"""Telegram animated stickers (.tgs): gzip'd Lottie JSON, rendered to one still with rlottie.

Steps, each bounded: stream-gunzip with a hard output cap (``max_decompressed_bytes``: gzip bombs stop at the
cap, not at the end of the bomb); parse the JSON; validate ``w``/``h`` (``w*h <= max_pixels``), ``fr``,
``ip``/``op`` (frame count ``<= max_frames``) and ``layers``; refuse image assets that point at files (rlottie
would load them from the local disk, so a crafted sticker could read local pictures into the library) and
embedded images whose header is past ``max_pixels`` (rlottie decodes them unbounded); render.

The still is the **middle frame** of the ``ip..op`` range, not the first: many stickers start from a neutral
pose (or from nothing, fading or scaling in) and show their expression mid-loop. It is rendered at the
sticker's own size scaled down so the longer side is at most 512 px (Telegram stickers are 512×512), and
un-premultiplied (rlottie draws premultiplied BGRA).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import zlib
from typing import Any

from PIL import Image

from engine.media._errors import CorruptMedia, MediaTooLarge, UnsupportedMedia
from engine.media._sniff import raster_dimensions, sniff_format
from engine.media._types import DecodedSticker, DecodeLimits, check_dimensions

RENDER_MAX_SIDE = 512
_CHUNK = 64 * 1024
_MAX_FRAME_RATE = 1000.0


def gunzip_capped(data: bytes, cap: int) -> bytes:
    """The first gzip member of ``data``, fed in chunks; MediaTooLarge as soon as the output passes ``cap``."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    try:
        for start in range(0, len(data), _CHUNK):
            pending = data[start : start + _CHUNK]
            while pending and not inflater.eof:
                out += inflater.decompress(pending, cap + 1 - len(out))
                if len(out) > cap:
                    raise MediaTooLarge(
                        f"the animated sticker unpacks to more than {cap} bytes; the limit is {cap} bytes"
                    )
                pending = inflater.unconsumed_tail
            if inflater.eof:
                break  # trailing bytes after the first member are ignored, as Telegram writes one member
    except zlib.error as exc:
        raise CorruptMedia(f"the animated sticker is not valid gzip data ({exc})") from None
    if not inflater.eof:
        raise CorruptMedia("the animated sticker is truncated (its gzip stream ends early)")
    return bytes(out)


def parse_lottie(data: bytes, limits: DecodeLimits) -> tuple[str, dict[str, Any]]:
    """(JSON text, parsed and validated animation) of a .tgs."""
    raw = gunzip_capped(data, limits.max_decompressed_bytes)
    try:
        text = raw.decode("utf-8-sig")
        doc = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CorruptMedia(
            f"the animated sticker's Lottie JSON is malformed ({type(exc).__name__})"
        ) from None
    if not isinstance(doc, dict):
        raise CorruptMedia("the animated sticker's Lottie JSON is not an object")
    width, height = _int_field(doc, "w"), _int_field(doc, "h")
    check_dimensions(width, height, limits)
    ip, op, fr = _num_field(doc, "ip"), _num_field(doc, "op"), _num_field(doc, "fr")
    if not 0 < fr <= _MAX_FRAME_RATE:
        raise CorruptMedia(
            f"the animated sticker's frame rate {fr:g} is not between 0 and {_MAX_FRAME_RATE:g}"
        )
    if not op > ip:
        raise CorruptMedia(f"the animated sticker's frame range {ip:g}..{op:g} is empty")
    if op - ip > limits.max_frames:
        raise MediaTooLarge(
            f"the animated sticker has {op - ip:g} frames; the limit is {limits.max_frames} frames"
        )
    if not isinstance(doc.get("layers"), list):
        raise CorruptMedia("the animated sticker's Lottie JSON has no layer list")
    _check_assets(doc, limits)
    return text, doc


def decode_tgs(data: bytes, limits: DecodeLimits) -> DecodedSticker:
    text, doc = parse_lottie(data, limits)
    width, height = int(doc["w"]), int(doc["h"])
    scale = min(1.0, RENDER_MAX_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = _render_still(text, size)
    return DecodedSticker(image, "animated", "tgs", width, height)


def _render_still(text: str, size: tuple[int, int]) -> Image.Image:
    try:
        from rlottie_python import LottieAnimation
    except (ImportError, OSError) as exc:  # the wheel ships librlottie; OSError when it cannot be loaded
        raise UnsupportedMedia(
            f"animated stickers cannot be read here: rlottie is unavailable ({exc})"
        ) from None
    width, height = size
    with LottieAnimation.from_data(text) as anim:
        if not anim.animation_p:  # rlottie returns NULL for JSON it cannot load; calls on NULL crash
            raise CorruptMedia("the animated sticker is not a Lottie animation rlottie can load")
        # rlottie counts op - ip + 1 frames (both ends included). The middle one is the still; if it is
        # blank (a sticker that blinks out mid-loop), the first frame is the fallback.
        total = max(1, int(anim.lottie_animation_get_totalframe()))
        for frame in dict.fromkeys(((total - 1) // 2, 0)):
            raw = anim.lottie_animation_render(frame_num=frame, width=width, height=height)
            if len(raw) < width * height * 4:
                raise CorruptMedia("the animated sticker could not be rendered")
            # rlottie's surface is premultiplied ARGB32 (BGRA bytes); rlottie-python's render_pillow_frame
            # reads it as straight BGRA, which darkens soft edges. Pillow's "BGRa" raw mode un-premultiplies.
            image = Image.frombuffer("RGBA", (width, height), raw, "raw", "BGRa", 0, 1).copy()
            if image.getbbox() is not None:
                return image
    raise CorruptMedia("the animated sticker renders as an empty picture")


def _int_field(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CorruptMedia(f"the animated sticker's Lottie JSON has no valid '{key}' field")
    if value != int(value):
        raise CorruptMedia(f"the animated sticker's '{key}' field ({value}) is not a whole number")
    return int(value)


def _num_field(doc: dict[str, Any], key: str) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CorruptMedia(f"the animated sticker's Lottie JSON has no valid '{key}' field")
    return float(value)


def _check_assets(doc: dict[str, Any], limits: DecodeLimits) -> None:
    """Image assets: only embedded ``data:`` URIs of a sticker format whose header fits ``max_pixels``.

    rlottie loads an asset's ``u`` + ``p`` path from the local disk (so a crafted sticker could pull a local
    picture into the library) and decodes embedded images with stb_image, unbounded; both are closed here.
    """
    assets = doc.get("assets", [])
    if not isinstance(assets, list):
        raise CorruptMedia("the animated sticker's 'assets' field is not a list")
    for asset in assets:
        if not isinstance(asset, dict) or asset.get("p") is None:  # precompositions carry no "p"
            continue
        path = asset["p"]
        if not (isinstance(path, str) and path.startswith("data:")):
            raise UnsupportedMedia(
                "the animated sticker refers to external image files, which are not allowed"
            )
        _check_embedded_image(path, limits)


def _check_embedded_image(uri: str, limits: DecodeLimits) -> None:
    header, _, payload = uri.partition(",")
    if not header.endswith(";base64"):
        raise UnsupportedMedia("the animated sticker embeds an image that is not base64-encoded")
    try:
        image = base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        raise CorruptMedia("the animated sticker embeds a malformed base64 image") from None
    fmt = sniff_format(image)
    if fmt not in ("png", "apng", "jpeg", "gif"):  # what rlottie's stb_image reads, among sticker formats
        raise UnsupportedMedia("the animated sticker embeds an image in a format that is not allowed")
    check_dimensions(*raster_dimensions(fmt, image), limits)
