"""Format sniffing by magic bytes and header-only dimension reads (nothing here decodes pixels)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

from engine.media._errors import CorruptMedia

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EBML_MAGIC = b"\x1a\x45\xdf\xa3"
GZIP_MAGIC = b"\x1f\x8b"

# JPEG start-of-frame markers (C4 = DHT, C8 = JPG extension and CC = DAC are not frames).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_TGS_PEEK = 256  # bytes of gunzipped output looked at to tell Lottie JSON from any other gzip
# Sniffing runs in the caller's process, outside the decode timeout, so a hostile file must not make it slow:
# it looks at most at this many PNG chunks for an acTL (real files have a handful before IDAT; 8 MB of empty
# chunks were 700,000).
SNIFF_PNG_CHUNKS = 64


def sniff_format(data: bytes) -> str | None:
    """The sticker format of ``data`` from its magic bytes, or None; file names and extensions play no part.

    Returns one of "png", "apng" (a PNG with an acTL chunk before its first IDAT), "gif", "webp", "jpeg",
    "tgs" (gzip whose content starts like a JSON object) or "webm" (EBML magic; Matroska is read alike).
    Animated GIF and WebP are still "gif" and "webp". Never decodes pixels; a .tgs is only peeked at.
    """
    data = data if isinstance(data, bytes) else bytes(data)
    if data.startswith(PNG_MAGIC):
        chunks = png_chunks(data, until=b"IDAT", limit=SNIFF_PNG_CHUNKS)
        return "apng" if any(ctype == b"acTL" for ctype, _ in chunks) else "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(EBML_MAGIC):
        return "webm"
    if data.startswith(GZIP_MAGIC) and _looks_like_json_object(_gunzip_peek(data)):
        return "tgs"
    return None


def png_chunks(
    data: bytes, until: bytes | None = None, limit: int | None = None
) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of each PNG chunk in order, stopping before ``until``, at IEND, where data runs out or
    after ``limit`` chunks."""
    pos = len(PNG_MAGIC)
    seen = 0
    while pos + 8 <= len(data) and (limit is None or seen < limit):
        seen += 1
        length, ctype = struct.unpack_from(">I4s", data, pos)
        if ctype == until:
            return
        yield ctype, data[pos + 8 : pos + 8 + length]
        if ctype == b"IEND":
            return
        pos += 12 + length


def apng_frame_count(data: bytes) -> int | None:
    for ctype, payload in png_chunks(data, until=b"IDAT"):
        if ctype == b"acTL" and len(payload) >= 4:
            return int(struct.unpack_from(">I", payload)[0])
    return None


def raster_dimensions(fmt: str, data: bytes) -> tuple[int, int]:
    """(width, height) declared by a PNG/APNG, GIF, WebP or JPEG header, read without decoding anything."""
    try:
        size = _HEADER_READERS[fmt](data)
    except (struct.error, IndexError):
        size = None
    if size is None:
        name = {"apng": "APNG", "webp": "WebP"}.get(fmt, fmt.upper())
        raise CorruptMedia(f"the {name} header is truncated or malformed")
    return size


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    return struct.unpack_from(">II", data, 16)


def _gif_size(data: bytes) -> tuple[int, int] | None:
    return struct.unpack_from("<HH", data, 6)


def _webp_size(data: bytes) -> tuple[int, int] | None:
    fourcc = data[12:16]
    if fourcc == b"VP8 ":  # lossy: frame tag (3 bytes), start code 9d 01 2a, 14-bit width and height
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        w, h = struct.unpack_from("<HH", data, 26)
        return w & 0x3FFF, h & 0x3FFF
    if fourcc == b"VP8L":  # lossless: signature 0x2f, then 14 bits width-1 and 14 bits height-1
        if data[20] != 0x2F:
            return None
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if fourcc == b"VP8X":  # extended (alpha, animation): 24-bit canvas width-1 and height-1
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return (w, h) if len(data) >= 30 else None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        (seglen,) = struct.unpack_from(">H", data, pos + 2)
        if marker in _JPEG_SOF:
            h, w = struct.unpack_from(">HH", data, pos + 5)
            return w, h
        pos += 2 + seglen
    return None


_HEADER_READERS = {
    "png": _png_size,
    "apng": _png_size,
    "gif": _gif_size,
    "webp": _webp_size,
    "jpeg": _jpeg_size,
}


def _gunzip_peek(data: bytes) -> bytes:
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:65536], _TGS_PEEK)
    except zlib.error:
        return b""


def _looks_like_json_object(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")
