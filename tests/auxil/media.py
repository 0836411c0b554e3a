"""Tiny sticker files made in memory for tests: good ones in every format the decoder reads, and broken ones.

Everything is deterministic (fixed seeds, no timestamps) and small; the expensive ones are cached.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import zlib
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

RGBA = tuple[int, int, int, int]
# Distinct, fully opaque colours for the frames of animated fixtures: frame 0 is red.
FRAME_COLOURS: list[RGBA] = [
    (255, 0, 0, 255),
    (0, 255, 0, 255),
    (0, 0, 255, 255),
    (255, 255, 0, 255),
    (0, 255, 255, 255),
    (255, 0, 255, 255),
]


def _frame_colour(i: int) -> RGBA:
    return FRAME_COLOURS[i % len(FRAME_COLOURS)]


def _solid(w: int, h: int, color: tuple[int, ...]) -> Image.Image:
    return Image.new("RGBA", (w, h), tuple(color))


def _frames(frames: int, w: int, h: int) -> list[Image.Image]:
    return [_solid(w, h, _frame_colour(i)) for i in range(frames)]


def png_bytes(w: int = 64, h: int = 64, color: tuple[int, ...] = (255, 0, 0, 255)) -> bytes:
    buf = io.BytesIO()
    _solid(w, h, color).save(buf, format="PNG")
    return buf.getvalue()


def apng_bytes(frames: int = 3, w: int = 64, h: int = 64) -> bytes:
    """An APNG whose frame i is FRAME_COLOURS[i] (frame 0 red, also the default image)."""
    first, *rest = _frames(frames, w, h)
    buf = io.BytesIO()
    first.save(buf, format="PNG", save_all=True, append_images=rest, duration=100, loop=0)
    return buf.getvalue()


def webp_bytes(animated: bool = False, w: int = 64, h: int = 64, frames: int = 3) -> bytes:
    """Lossless WebP (exact colours): a red still, or ``frames`` frames coloured like apng_bytes."""
    buf = io.BytesIO()
    if animated:
        first, *rest = _frames(frames, w, h)
        first.save(buf, format="WEBP", save_all=True, append_images=rest, duration=100, lossless=True)
    else:
        _solid(w, h, (255, 0, 0, 255)).save(buf, format="WEBP", lossless=True)
    return buf.getvalue()


def jpeg_bytes(w: int = 64, h: int = 48, color: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def gif_bytes(frames: int = 3, w: int = 64, h: int = 64) -> bytes:
    first, *rest = (im.convert("RGB") for im in _frames(frames, w, h))
    buf = io.BytesIO()
    first.save(buf, format="GIF", save_all=True, append_images=rest, duration=100, loop=0)
    return buf.getvalue()


def _static(value: Any) -> dict[str, Any]:
    return {"a": 0, "k": value}


def lottie_json(w: int = 512, h: int = 512, frames: int = 30, opacity: float = 100) -> dict[str, Any]:
    """A minimal Lottie animation: one shape layer, a red w/4×h/4 square sliding left → right.

    At frame 0 the square is centred at (w/4, h/2), at the middle frame at (w/2, h/2), at the end at
    (3w/4, h/2). ``opacity`` (0-100) is the fill's opacity, to check un-premultiplication.
    """
    position = {
        "a": 1,
        "k": [
            {"t": 0, "s": [w * 0.25, h / 2, 0], "i": {"x": [1], "y": [1]}, "o": {"x": [0], "y": [0]}},
            {"t": frames, "s": [w * 0.75, h / 2, 0]},
        ],
    }
    shape_layer = {
        "ddd": 0,
        "ind": 1,
        "ty": 4,
        "nm": "square",
        "sr": 1,
        "ks": {
            "o": _static(100),
            "r": _static(0),
            "p": position,
            "a": _static([0, 0, 0]),
            "s": _static([100, 100, 100]),
        },
        "ao": 0,
        "shapes": [
            {
                "ty": "gr",
                "nm": "group",
                "it": [
                    {
                        "ty": "rc",
                        "d": 1,
                        "nm": "rect",
                        "s": _static([w / 4, h / 4]),
                        "p": _static([0, 0]),
                        "r": _static(0),
                    },
                    {"ty": "fl", "nm": "fill", "c": _static([1, 0, 0, 1]), "o": _static(opacity), "r": 1},
                    {
                        "ty": "tr",
                        "p": _static([0, 0]),
                        "a": _static([0, 0]),
                        "s": _static([100, 100]),
                        "r": _static(0),
                        "o": _static(100),
                        "sk": _static(0),
                        "sa": _static(0),
                    },
                ],
            }
        ],
        "ip": 0,
        "op": frames,
        "st": 0,
        "bm": 0,
    }
    return {
        "v": "5.5.2",
        "fr": 30,
        "ip": 0,
        "op": frames,
        "w": w,
        "h": h,
        "nm": "fixture",
        "ddd": 0,
        "assets": [],
        "layers": [shape_layer],
    }


def gzip_json(doc: Any) -> bytes:
    return gzip.compress(json.dumps(doc).encode(), mtime=0)


def tgs_bytes(w: int = 512, h: int = 512, frames: int = 30, opacity: float = 100) -> bytes:
    """A Telegram animated sticker: gzip'd :func:`lottie_json`."""
    return gzip_json(lottie_json(w, h, frames, opacity))


@lru_cache(maxsize=8)
def webm_bytes(frames: int = 5, alpha: bool = True, w: int = 64, h: int = 64) -> bytes:
    """A VP9 WebM: a red w/2×h/2 square in the middle of a transparent (``alpha``) or black frame.

    Encoded by libvpx-vp9 (FFmpeg has no native VP9 encoder); with ``alpha`` as yuva420p, which puts the
    alpha plane in Matroska BlockAdditional side data, as in Telegram's video stickers.
    """
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="webm") as container:
        stream = container.add_stream("libvpx-vp9", rate=30)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuva420p" if alpha else "yuv420p"
        stream.codec_context.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        for i in range(frames):
            arr = np.zeros((h, w, 4), np.uint8)
            if not alpha:
                arr[..., 3] = 255
            arr[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = (255, 0, 0, 255)
            frame = av.VideoFrame.from_ndarray(arr, format="rgba")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


# ---------------------------------------------------------------- broken inputs


def truncated_png() -> bytes:
    """A noisy 128×128 PNG cut in the middle of its IDAT: a valid header, then the data just stops."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (128, 128, 4), dtype=np.uint8)).save(buf, format="PNG")
    data = buf.getvalue()
    return data[: len(data) // 2]


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def huge_png_header(w: int = 20000, h: int = 20000) -> bytes:
    """A PNG that declares w×h RGBA pixels but carries a few hundred bytes: a decompression bomb's header.

    The IDAT holds the first few rows only (all zero), so nothing here costs memory to build; a decoder that
    trusted the header would allocate w*h*4 bytes before noticing.
    """
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)  # 8-bit RGBA, deflate, no filter, no interlace
    idat = zlib.compressobj(9).compress(b"\0" * (4 * min(w, 4096) + 1) * 4)  # no flush: truncated stream
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


@lru_cache(maxsize=2)
def gzip_bomb_tgs(unpacked_mib: int = 64) -> bytes:
    """A gzip of ~``unpacked_mib`` MiB: a Lottie JSON opening, then a string of spaces (about 1000:1).

    It sniffs as .tgs (gzip, starts with ``{``) and only the decompression cap stops it; built in 1 MiB
    chunks so making it does not hold the unpacked size in memory.
    """
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [comp.compress(b'{"v":"5.5.2","w":512,"h":512,"fr":30,"ip":0,"op":30,"layers":[],"nm":"')]
    chunk = b" " * (1024 * 1024)
    parts.extend(comp.compress(chunk) for _ in range(unpacked_mib))
    parts.append(comp.compress(b'"}') + comp.flush())
    return b"".join(parts)


def malformed_tgs_json() -> bytes:
    """Valid gzip of a JSON object that stops half-way."""
    return gzip.compress(b'{"v":"5.5.2","w":512,"h":512,"fr":30,"ip":0,"op":', mtime=0)


def garbage_webm(size: int = 4096) -> bytes:
    """The EBML magic of a WebM followed by random junk."""
    return b"\x1a\x45\xdf\xa3" + np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8).tobytes()


def not_an_image() -> bytes:
    return b"Hello! This is a text file that somebody named sticker.png.\n"


# ---------------------------------------------------------------- more broken inputs


def huge_gif_header(w: int = 60000, h: int = 60000) -> bytes:
    """A GIF whose logical screen is w×h (a 1×1 frame follows): refused from the header alone."""
    return gif_with_frame(w, h, 1, 1)


def gif_with_frame(screen_w: int, screen_h: int, frame_w: int, frame_h: int) -> bytes:
    """A GIF with a ``screen_w``×``screen_h`` logical screen and one ``frame_w``×``frame_h`` frame of a few
    bytes of LZW: a frame may overhang the screen, and Pillow grows the image to hold it."""
    header = b"GIF89a" + struct.pack("<HHBBB", screen_w, screen_h, 0x80, 0, 0) + b"\x00\x00\x00\xff\x00\x00"
    descriptor = b"," + struct.pack("<HHHHB", 0, 0, frame_w, frame_h, 0)
    return header + descriptor + b"\x02\x02\x4c\x01\x00" + b";"


def huge_jpeg_header(w: int = 60000, h: int = 60000) -> bytes:
    """A real JPEG whose SOF0 is patched to declare w×h pixels."""
    data = bytearray(jpeg_bytes())
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, h, w)
    return bytes(data)


def huge_webp_header(w: int = 16384, h: int = 16384) -> bytes:
    """An animated WebP whose VP8X canvas is patched to w×h pixels (24-bit fields, stored minus one)."""
    data = bytearray(webp_bytes(animated=True, frames=2))
    vp8x = data.find(b"VP8X")
    data[vp8x + 12 : vp8x + 15] = (w - 1).to_bytes(3, "little")
    data[vp8x + 15 : vp8x + 18] = (h - 1).to_bytes(3, "little")
    return bytes(data)


def _png_with_chunk_before_idat(ctype: bytes, payload: bytes) -> bytes:
    base = png_bytes(8, 8)
    at = base.find(b"IDAT") - 4
    return base[:at] + _png_chunk(ctype, payload) + base[at:]


def png_text_bomb(unpacked_mib: int = 256) -> bytes:
    """An 8×8 PNG carrying a zTXt chunk that inflates to ``unpacked_mib`` MiB (about 250 KiB on disk)."""
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(b"A" * (1024 * 1024)) for _ in range(unpacked_mib)) + comp.flush()
    return _png_with_chunk_before_idat(b"zTXt", b"Comment\x00\x00" + body)


def png_icc_bomb(unpacked_mib: int = 256) -> bytes:
    """An 8×8 PNG whose iCCP colour profile inflates to ``unpacked_mib`` MiB."""
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(b"\0" * (1024 * 1024)) for _ in range(unpacked_mib)) + comp.flush()
    return _png_with_chunk_before_idat(b"iCCP", b"icc\x00\x00" + body)


def apng_lying_frame_count(declared: int = 2**31 - 1) -> bytes:
    """A two-frame APNG whose acTL declares ``declared`` frames."""
    data = bytearray(apng_bytes(frames=2))
    at = data.find(b"acTL")
    struct.pack_into(">I", data, at + 4, declared)
    struct.pack_into(">I", data, at + 12, zlib.crc32(bytes(data[at : at + 12])))
    return bytes(data)


def wrong_magic() -> dict[str, bytes]:
    """One format's magic bytes in front of another format's file (or of text), by a readable id."""
    return {
        "png-magic-jpeg-body": b"\x89PNG\r\n\x1a\n" + jpeg_bytes(),
        "jpeg-magic-png-body": b"\xff\xd8\xff" + png_bytes(),
        "gif-magic-png-body": b"GIF89a" + png_bytes(),
        "riff-webp-jpeg-body": b"RIFF\x00\x10\x00\x00WEBP" + jpeg_bytes(),
        "ebml-magic-text": b"\x1a\x45\xdf\xa3" + not_an_image() * 20,
        "gzip-of-a-png": gzip.compress(png_bytes(), mtime=0),
        "gzip-magic-junk": b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"not deflate at all" * 10,
    }
