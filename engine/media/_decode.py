"""``decode_sticker``: bytes → one RGBA still, in the calling thread, or a MediaError."""

from __future__ import annotations

from engine.media._errors import CorruptMedia, MediaError, MediaTooLarge, UnsupportedMedia, describe
from engine.media._sniff import sniff_format
from engine.media._types import DecodedSticker, DecodeLimits


def check_input(data: bytes, limits: DecodeLimits) -> str:
    """The checks that need no parsing, in order: empty, too many bytes, unknown magic. Returns the format."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"decode_sticker needs bytes, not {type(data).__name__}")
    size = len(data)
    if size == 0:
        raise CorruptMedia("the file is empty")
    if size > limits.max_bytes:
        raise MediaTooLarge(f"the file is {_human(size)}; the limit is {_human(limits.max_bytes)}")
    fmt = sniff_format(data)
    if fmt is None:
        raise UnsupportedMedia(
            "the file is not a supported sticker format (PNG, APNG, WebP, JPEG, GIF, TGS or WebM)"
        )
    return fmt


def decode_sticker(data: bytes, limits: DecodeLimits = DecodeLimits()) -> DecodedSticker:
    """Decode one sticker file into one RGBA still, synchronously and in this thread.

    Order of checks: empty → size > ``max_bytes`` (before parsing) → unknown magic → dimensions from the
    header against ``max_pixels`` (before any pixel is decoded) → decode. Animated GIF/APNG/WebP give their
    first frame, .tgs its middle frame (see :mod:`engine.media._lottie`), .webm its first frame. Raises only
    :class:`MediaError` (and TypeError for a non-bytes argument). Not time-bounded: for untrusted input in the
    bot use :func:`decode_sticker_bounded` / :func:`decode_sticker_async`.
    """
    fmt = check_input(data, limits)
    data = bytes(data)
    try:
        if fmt == "tgs":
            from engine.media._lottie import decode_tgs

            return decode_tgs(data, limits)
        if fmt == "webm":
            from engine.media._video import decode_webm

            return decode_webm(data, limits)
        from engine.media._raster import decode_raster

        return decode_raster(fmt, data, limits)
    except MediaError:
        raise
    except MemoryError:
        raise MediaTooLarge(f"the {fmt} file is too large to decode in memory") from None
    except Exception as exc:  # last line of defence: no library exception leaves the decoder
        raise CorruptMedia(f"the {fmt} file could not be decoded ({describe(exc)})") from None


def _human(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"
