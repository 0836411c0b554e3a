"""PNG, APNG, GIF, WebP and JPEG through Pillow: header checked first, then the first frame only."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

from engine.media._errors import CorruptMedia, MediaError, MediaTooLarge, describe
from engine.media._sniff import apng_frame_count, raster_dimensions
from engine.media._types import DecodedSticker, DecodeLimits, check_dimensions

_PIL_FORMAT = {"png": "PNG", "apng": "PNG", "gif": "GIF", "webp": "WEBP", "jpeg": "JPEG"}
_NAME = {"png": "PNG", "apng": "APNG", "gif": "GIF", "webp": "WebP", "jpeg": "JPEG"}


def decode_raster(fmt: str, data: bytes, limits: DecodeLimits) -> DecodedSticker:
    # Pillow warns past MAX_IMAGE_PIXELS and refuses past twice that; refusing here first keeps its
    # process-global warning state out of the picture (warning filters are not thread-safe to change).
    pillow_cap = Image.MAX_IMAGE_PIXELS or None
    width, height = raster_dimensions(fmt, data)
    check_dimensions(width, height, limits, pillow_cap)
    if fmt == "apng":
        frames = apng_frame_count(data)
        if frames is not None and frames > limits.max_frames:
            raise MediaTooLarge(f"the APNG declares {frames} frames; the limit is {limits.max_frames}")
    name = _NAME[fmt]
    try:
        with Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[fmt]]) as im:
            check_dimensions(im.width, im.height, limits, pillow_cap)  # what Pillow read must agree
            im.load()  # frame 0 (for APNG, Pillow skips a default image that is not part of the animation)
            still = _to_rgba(_oriented(im) if fmt == "jpeg" else im)
            animated = bool(getattr(im, "is_animated", False))
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # the header passed the checks above, so a frame is bigger than the image it belongs to (a GIF frame
        # may overhang its logical screen); the bounded workers turn Pillow's warning into this error
        raise MediaTooLarge(
            f"the {name} image has a frame larger than its {width}×{height}-pixel header declares; "
            f"the limit is {min(limits.max_pixels, pillow_cap or limits.max_pixels)} pixels"
        ) from None
    except MemoryError:
        raise MediaTooLarge(f"the {name} image is too large to decode in memory") from None
    except Image.UnidentifiedImageError:  # its message only names the BytesIO object
        raise CorruptMedia(f"the {name} file is damaged or truncated (Pillow cannot read it)") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError, struct.error...
        if isinstance(exc, ValueError) and "Decompressed data too large" in str(exc):
            # a zTXt/iTXt/iCCP chunk inflating past Pillow's MAX_TEXT_CHUNK: a bomb, not a damaged file
            raise MediaTooLarge(
                f"the {name} file carries a compressed metadata chunk that inflates past the decoder's limit"
            ) from None
        raise CorruptMedia(f"the {name} file is damaged or truncated ({describe(exc)})") from None
    still.info = {}
    return DecodedSticker(still, "animated" if animated else "static", fmt, still.width, still.height)


def _oriented(im: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block must not cost an otherwise good photo
        return im


def _to_rgba(im: Image.Image) -> Image.Image:
    if im.mode == "RGBA":
        return im.copy()
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):  # 16-bit or 32-bit grey: scale to 8 bits
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode != "F" else max(float(arr.max(initial=0.0)), 1.0)
        grey = np.clip(arr * (255.0 / peak), 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGBA")
    try:
        return im.convert("RGBA")
    except ValueError:  # modes without a direct RGBA conversion (e.g. CMYK on some builds)
        return im.convert("RGB").convert("RGBA")
