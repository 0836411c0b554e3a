"""Telegram video stickers (.webm, VP9 with optional alpha) through PyAV: the first frame only.

The track's declared width/height are checked before any packet is decoded, the decoder also gets FFmpeg's
``max_pixels`` so a frame larger than its header is refused inside the codec, and at most ``max_frames``
packets are read while looking for the first frame.

Alpha: a VP9 (or VP8) WebM keeps its alpha plane as a second VP9 stream in Matroska BlockAdditional side data,
which FFmpeg's native ``vp9`` decoder ignores (frames come out yuv420p, opaque). libvpx's decoder
(``libvpx-vp9``, ``libvpx`` for VP8) reads that side data and returns yuva420p, so it is used when this FFmpeg
build has it; otherwise the native decoder runs and the still is opaque.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from engine.media._errors import CorruptMedia, MediaError, MediaTooLarge, UnsupportedMedia, describe
from engine.media._types import DecodedSticker, DecodeLimits, check_dimensions

# codec of the track -> decoders to try, the alpha-capable one first
_DECODERS = {"vp9": ("libvpx-vp9", "vp9"), "vp8": ("libvpx", "vp8")}


def alpha_decoder_available(codec: str = "vp9") -> bool:
    """Whether this FFmpeg build has the libvpx decoder that keeps a WebM's alpha channel."""
    import av

    return _DECODERS[codec][0] in av.codecs_available


def decode_webm(data: bytes, limits: DecodeLimits) -> DecodedSticker:
    try:
        import av
    except ImportError as exc:
        raise UnsupportedMedia(f"video stickers cannot be read here: PyAV is unavailable ({exc})") from None
    try:
        container = av.open(io.BytesIO(data), mode="r", format="matroska")
    except Exception as exc:
        raise CorruptMedia(f"the video sticker is not a readable WebM file ({describe(exc)})") from None
    try:
        with container:
            return _first_frame(av, container, limits)
    except MediaError:
        raise
    except MemoryError:
        raise MediaTooLarge("the video sticker is too large to decode in memory") from None
    except Exception as exc:  # av.error.InvalidDataError and friends, ValueError, OSError...
        raise CorruptMedia(f"the video sticker is damaged or truncated ({describe(exc)})") from None


def _first_frame(av: Any, container: Any, limits: DecodeLimits) -> DecodedSticker:
    if not container.streams.video:
        raise CorruptMedia("the video sticker has no video track")
    stream = container.streams.video[0]
    params = stream.codec_context
    if params.width or params.height:  # 0×0 means the header does not say; the decoder's max_pixels holds
        check_dimensions(params.width, params.height, limits)
    codec = params.name
    if codec not in _DECODERS:
        raise UnsupportedMedia(f"the video sticker uses the {codec} codec; only VP9 and VP8 are supported")
    decoder = _open_decoder(av, codec, limits)
    for packets, packet in enumerate(container.demux(stream), 1):  # the last, empty packet flushes
        if packets > limits.max_frames:
            raise MediaTooLarge(f"no picture in the first {limits.max_frames} packets of the video sticker")
        for frame in decoder.decode(packet):
            check_dimensions(frame.width, frame.height, limits)
            image = Image.fromarray(frame.to_ndarray(format="rgba"))
            return DecodedSticker(image, "video", "webm", frame.width, frame.height)
    raise CorruptMedia("the video sticker has no decodable frame")


def _open_decoder(av: Any, codec: str, limits: DecodeLimits) -> Any:
    for name in _DECODERS[codec]:
        if name not in av.codecs_available:
            continue
        ctx = av.CodecContext.create(name, "r")
        ctx.thread_count = 1  # one sticker, one core: the decode pool is the unit of parallelism
        ctx.options = {"max_pixels": str(limits.max_pixels)}
        return ctx
    raise UnsupportedMedia(f"video stickers cannot be read here: FFmpeg has no {codec} decoder")
