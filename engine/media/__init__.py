"""The one shared, bounded sticker decoder: bytes in, one still RGBA image out, or a :class:`MediaError`.

Every image entering the product (pack import from a folder or zip, Telegram/Discord downloads, training
data) goes through :func:`decode_sticker` (in this thread, untimed) or :func:`decode_sticker_bounded` /
:func:`decode_sticker_async` (in a killable worker process, see :mod:`engine.media._bounded`).

Formats are told by magic bytes only: PNG, APNG, GIF, WebP, JPEG (first frame, via Pillow), Telegram .tgs
(gzip'd Lottie, middle frame rendered by rlottie, at most 512 px) and .webm (VP9/VP8 first frame via PyAV,
alpha kept with libvpx). Limits (:class:`DecodeLimits`) are checked before the work they bound.
"""

from engine.media._bounded import decode_sticker_async, decode_sticker_bounded
from engine.media._decode import decode_sticker
from engine.media._errors import (
    CorruptMedia,
    DecoderUnavailable,
    DecodeTimeout,
    MediaError,
    MediaTooLarge,
    UnsupportedMedia,
)
from engine.media._output import contact_sheet, to_png_bytes
from engine.media._sniff import sniff_format
from engine.media._types import DecodedSticker, DecodeLimits

__all__ = [
    "CorruptMedia",
    "DecodeLimits",
    "DecodeTimeout",
    "DecodedSticker",
    "DecoderUnavailable",
    "MediaError",
    "MediaTooLarge",
    "UnsupportedMedia",
    "contact_sheet",
    "decode_sticker",
    "decode_sticker_async",
    "decode_sticker_bounded",
    "sniff_format",
    "to_png_bytes",
]
