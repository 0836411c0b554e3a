"""The decoder's errors: every failure to turn bytes into a still is a :class:`MediaError`.

Messages are whole sentences meant for the person who sent the file ("image is 20000×20000 pixels; the limit
is 16777216 pixels"), so callers can show ``str(exc)`` as is.
"""

from __future__ import annotations


class MediaError(ValueError):
    """The bytes are not a sticker this product can use; ``str(exc)`` says why, for the user."""


class UnsupportedMedia(MediaError):
    """Not a format the decoder reads (or a feature of one it refuses, such as external Lottie assets)."""


class MediaTooLarge(MediaError):
    """Past a :class:`~engine.media.DecodeLimits` bound: file size, pixels, decompressed size or frames."""


class CorruptMedia(MediaError):
    """The format was recognised but the data is truncated, malformed or crashed the decoder."""


class DecodeTimeout(MediaError):
    """The decode ran past ``DecodeLimits.timeout_s`` and its worker process was killed."""


class DecoderUnavailable(MediaError):
    """The bounded decoder could not start its worker process (a host problem, not the file's)."""


def describe(exc: BaseException) -> str:
    """A short "Type: message" of a library exception, for the parenthesised detail of a MediaError."""
    # FFmpeg errors read "[Errno 1094995529] Invalid data found when processing input: '<none>'"; keep
    # the strerror part only.
    strerror = getattr(exc, "strerror", None)
    text = " ".join((strerror if isinstance(strerror, str) and strerror else str(exc)).split()).rstrip(".")
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__
