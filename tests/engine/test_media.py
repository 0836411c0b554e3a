"""engine.media: the one bounded sticker decoder (formats, limits, errors, timeouts, contact sheets)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.media import (
    CorruptMedia,
    DecodedSticker,
    DecodeLimits,
    DecodeTimeout,
    MediaError,
    MediaTooLarge,
    UnsupportedMedia,
    contact_sheet,
    decode_sticker,
    decode_sticker_async,
    decode_sticker_bounded,
    sniff_format,
    to_png_bytes,
)
from engine.media._bounded import run_bounded
from engine.media._output import label_height
from engine.media._video import alpha_decoder_available
from tests.auxil import media as fx

RED = (255, 0, 0, 255)
ROOT = Path(__file__).resolve().parents[2]
BAD_INPUT_SECONDS = 2.0  # every refusal below must come back well within this, on a loaded 2-core box

Decoder = Callable[..., DecodedSticker]
DECODERS = [pytest.param(decode_sticker, id="in-thread"), pytest.param(decode_sticker_bounded, id="bounded")]


def _near(pixel: tuple[int, ...], expected: tuple[int, ...], tol: int = 4) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel, expected, strict=True))


def _centre(im: Image.Image) -> tuple[int, ...]:
    return im.getpixel((im.width // 2, im.height // 2))


# ------------------------------------------------------------------ good inputs

GOOD = [
    # id, bytes factory, sniffed format, kind, (w, h)
    ("png", fx.png_bytes, "png", "static", (64, 64)),
    ("apng", fx.apng_bytes, "apng", "animated", (64, 64)),
    ("webp", fx.webp_bytes, "webp", "static", (64, 64)),
    ("webp-animated", lambda: fx.webp_bytes(animated=True), "webp", "animated", (64, 64)),
    ("jpeg", fx.jpeg_bytes, "jpeg", "static", (64, 48)),
    ("gif", fx.gif_bytes, "gif", "animated", (64, 64)),
    ("gif-still", lambda: fx.gif_bytes(frames=1), "gif", "static", (64, 64)),
    ("tgs", fx.tgs_bytes, "tgs", "animated", (512, 512)),
    ("webm", fx.webm_bytes, "webm", "video", (64, 64)),
]


@pytest.mark.parametrize(("factory", "fmt", "kind", "size"), [g[1:] for g in GOOD], ids=[g[0] for g in GOOD])
def test_good_formats_decode_to_an_rgba_still(
    factory: Callable[[], bytes], fmt: str, kind: str, size: tuple[int, int]
) -> None:
    data = factory()
    assert sniff_format(data) == fmt
    decoded = decode_sticker(data)
    assert isinstance(decoded, DecodedSticker)
    assert (decoded.source_format, decoded.kind) == (fmt, kind)
    assert (decoded.width, decoded.height) == size == decoded.image.size
    assert decoded.image.mode == "RGBA"
    assert not getattr(decoded.image, "is_animated", False)
    assert decoded.image.info == {}
    # every fixture has red (frame 0's colour for the animated ones) in the middle
    assert _near(_centre(decoded.image), RED), _centre(decoded.image)


@pytest.mark.parametrize("factory", [g[1] for g in GOOD], ids=[g[0] for g in GOOD])
def test_bounded_and_async_decoders_agree_with_the_in_thread_one(factory: Callable[[], bytes]) -> None:
    data = factory()
    direct = decode_sticker(data)
    bounded = decode_sticker_bounded(data)
    via_async = asyncio.run(decode_sticker_async(data))
    for other in (bounded, via_async):
        assert (other.kind, other.source_format, other.width, other.height) == (
            direct.kind,
            direct.source_format,
            direct.width,
            direct.height,
        )
        assert other.image.tobytes() == direct.image.tobytes()


def test_tgs_renders_the_middle_frame() -> None:
    # the square slides from x = w/4 (frame 0) to 3w/4 (last frame): the middle frame has it centred
    image = decode_sticker(fx.tgs_bytes(512, 512, frames=30)).image
    assert image.getbbox() is not None
    assert _near(image.getpixel((256, 256)), RED)
    assert image.getpixel((128, 256))[3] == 0  # where frame 0 would have put it: empty
    left, _, right, _ = image.getbbox()
    assert abs((left + right) / 2 - 256) <= 4


def test_tgs_is_unpremultiplied() -> None:
    # rlottie draws premultiplied BGRA; a half-transparent red must stay red, not turn dark red
    r, g, b, a = decode_sticker(fx.tgs_bytes(opacity=50)).image.getpixel((256, 256))
    assert 120 <= a <= 135
    assert r >= 250 and g <= 4 and b <= 4


def test_tgs_renders_at_most_512_px_and_reports_its_own_size() -> None:
    decoded = decode_sticker(fx.tgs_bytes(w=1024, h=768))
    assert decoded.image.size == (512, 384)
    assert (decoded.width, decoded.height) == (1024, 768)
    small = decode_sticker(fx.tgs_bytes(w=100, h=100))
    assert small.image.size == (100, 100)


def test_webm_keeps_alpha_with_libvpx() -> None:
    image = decode_sticker(fx.webm_bytes(alpha=True)).image
    assert _near(_centre(image), RED, tol=12)
    if not alpha_decoder_available():
        pytest.skip("this FFmpeg build has no libvpx-vp9 decoder: WebM alpha cannot be kept")
    assert image.getpixel((2, 2))[3] <= 8  # the transparent border
    assert image.getpixel((32, 32))[3] >= 247


def test_webm_without_alpha_is_opaque() -> None:
    image = decode_sticker(fx.webm_bytes(alpha=False)).image
    assert image.getpixel((2, 2))[3] == 255
    assert _near(_centre(image), RED, tol=12)


def test_16_bit_and_palette_pngs_become_rgba() -> None:
    grey16 = Image.new("I;16", (8, 8), 65535)
    buf = io.BytesIO()
    grey16.save(buf, format="PNG")
    decoded = decode_sticker(buf.getvalue())
    assert decoded.image.mode == "RGBA"
    assert decoded.image.getpixel((0, 0)) == (255, 255, 255, 255)
    palette = Image.new("P", (8, 8), 3)
    palette.putpalette([0, 0, 0, 10, 10, 10, 20, 20, 20, 255, 0, 0])
    buf = io.BytesIO()
    palette.save(buf, format="PNG", transparency=3)
    assert decode_sticker(buf.getvalue()).image.getpixel((0, 0)) == (255, 0, 0, 0)


# ------------------------------------------------------------------ sniffing


@pytest.mark.parametrize(("factory", "fmt"), [(g[1], g[2]) for g in GOOD], ids=[g[0] for g in GOOD])
def test_sniff_format_ignores_misleading_file_names(
    tmp_path: Path, factory: Callable[[], bytes], fmt: str
) -> None:
    for lie in ("sticker.png", "sticker.tgs", "sticker.webm", "sticker.txt", "sticker"):
        path = tmp_path / lie
        path.write_bytes(factory())
        assert sniff_format(path.read_bytes()) == fmt
    assert decode_sticker((tmp_path / "sticker.tgs").read_bytes()).source_format == fmt


@pytest.mark.parametrize(
    "data",
    [
        b"",
        fx.not_an_image(),
        gzip.compress(b"just some gzipped text", mtime=0),  # gzip, but not Lottie
        gzip.compress(b"[1, 2, 3]", mtime=0),  # gzip'd JSON, but not an object
        b"RIFF\x24\x00\x00\x00WAVEfmt ",  # RIFF, but WAV
        b"BM" + b"\0" * 60,  # BMP: a real image format, not a sticker one
        b"\x00\x00\x01\x00\x01\x00",  # ICO
    ],
    ids=["empty", "text", "gzip-text", "gzip-json-list", "wav", "bmp", "ico"],
)
def test_sniff_format_refuses_other_formats(data: bytes) -> None:
    assert sniff_format(data) is None


def test_sniff_format_tells_apng_from_png_by_actl_before_idat() -> None:
    assert sniff_format(fx.apng_bytes(frames=3)) == "apng"
    assert sniff_format(fx.png_bytes()) == "png"
    assert sniff_format(fx.garbage_webm()) == "webm"


# ------------------------------------------------------------------ bad inputs

BAD = [
    # id, bytes factory, limits, error class, words the message must contain
    ("empty", lambda: b"", DecodeLimits(), CorruptMedia, "empty"),
    ("not-an-image", fx.not_an_image, DecodeLimits(), UnsupportedMedia, "not a supported"),
    ("truncated-png", fx.truncated_png, DecodeLimits(), CorruptMedia, "truncated"),
    ("huge-png-header", fx.huge_png_header, DecodeLimits(), MediaTooLarge, "20000×20000 pixels"),
    ("gzip-bomb-tgs", fx.gzip_bomb_tgs, DecodeLimits(), MediaTooLarge, "16777216 bytes"),
    ("malformed-tgs-json", fx.malformed_tgs_json, DecodeLimits(), CorruptMedia, "Lottie JSON is malformed"),
    ("garbage-webm", fx.garbage_webm, DecodeLimits(), CorruptMedia, "video sticker"),
    ("png-header-only", lambda: fx.png_bytes()[:30], DecodeLimits(), CorruptMedia, "PNG"),
    ("jpeg-header-only", lambda: fx.jpeg_bytes()[:20], DecodeLimits(), CorruptMedia, "JPEG"),
    ("webp-header-only", lambda: fx.webp_bytes()[:14], DecodeLimits(), CorruptMedia, "WebP"),
    ("gif-cut", lambda: fx.gif_bytes()[:40], DecodeLimits(), CorruptMedia, "GIF"),
    ("tgs-cut", lambda: fx.tgs_bytes()[:60], DecodeLimits(), CorruptMedia, "gzip"),
    ("webm-cut", lambda: fx.webm_bytes()[:300], DecodeLimits(), CorruptMedia, "video sticker"),
    ("too-many-bytes", fx.jpeg_bytes, DecodeLimits(max_bytes=100), MediaTooLarge, "the limit is 100 bytes"),
    ("tgs-huge-canvas", lambda: fx.tgs_bytes(w=100_000, h=100_000), DecodeLimits(), MediaTooLarge, "pixels"),
    ("tgs-too-many-frames", fx.tgs_bytes, DecodeLimits(max_frames=10), MediaTooLarge, "frames"),
    ("apng-too-many-frames", fx.apng_bytes, DecodeLimits(max_frames=2), MediaTooLarge, "frames"),
    ("webm-too-many-pixels", fx.webm_bytes, DecodeLimits(max_pixels=1000), MediaTooLarge, "64×64 pixels"),
    ("small-unpack-cap", fx.tgs_bytes, DecodeLimits(max_decompressed_bytes=100), MediaTooLarge, "100 bytes"),
]


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(
    ("factory", "limits", "error", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_inputs_raise_a_readable_media_error_quickly(
    decode: Decoder, factory: Callable[[], bytes], limits: DecodeLimits, error: type[MediaError], words: str
) -> None:
    data = factory()
    start = time.monotonic()
    with pytest.raises(MediaError) as info:
        decode(data, limits)
    assert time.monotonic() - start < BAD_INPUT_SECONDS
    assert type(info.value) is error, repr(info.value)
    message = str(info.value)
    assert words in message
    assert message[0].islower() or message[0].isupper()  # a sentence, not an empty or repr-like string
    assert "Traceback" not in message and len(message) < 300


@pytest.mark.parametrize(
    ("factory", "declared"),
    [
        (fx.png_bytes, "64×64"),
        (fx.apng_bytes, "64×64"),
        (fx.webp_bytes, "64×64"),  # lossless VP8L header
        (lambda: fx.webp_bytes(animated=True), "64×64"),  # VP8X header
        (lambda: _lossy_webp(), "64×64"),  # lossy VP8 header
        (fx.jpeg_bytes, "64×48"),
        (fx.gif_bytes, "64×64"),
    ],
    ids=["png", "apng", "webp-lossless", "webp-animated", "webp-lossy", "jpeg", "gif"],
)
def test_every_raster_header_is_read_before_decoding(factory: Callable[[], bytes], declared: str) -> None:
    with pytest.raises(MediaTooLarge, match=f"image is {declared} pixels; the limit is 3071 pixels"):
        decode_sticker(factory(), DecodeLimits(max_pixels=3071))


def _lossy_webp() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (255, 0, 0)).save(buf, format="WEBP", quality=80)
    return buf.getvalue()


def test_size_limit_is_checked_before_parsing() -> None:
    junk_png = b"\x89PNG\r\n\x1a\n" + b"\xff" * 1000  # would be CorruptMedia if it were parsed
    with pytest.raises(MediaTooLarge, match="the limit is 500 bytes"):
        decode_sticker(junk_png, DecodeLimits(max_bytes=500))
    with pytest.raises(CorruptMedia):
        decode_sticker(junk_png)


def _tgs(**changes: Any) -> bytes:
    doc = fx.lottie_json()
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return fx.gzip_json(doc)


def _image_asset(data: bytes) -> dict[str, Any]:
    return {
        "id": "img",
        "w": 10,
        "h": 10,
        "u": "",
        "p": "data:image/png;base64," + base64.b64encode(data).decode(),
    }


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (_tgs(w=None), CorruptMedia, "'w'"),
        (_tgs(h=-5), CorruptMedia, "empty image"),
        (_tgs(w=12.5), CorruptMedia, "whole number"),
        (_tgs(w=True), CorruptMedia, "'w'"),
        (_tgs(op=0), CorruptMedia, "frame range"),
        (_tgs(fr=0), CorruptMedia, "frame rate"),
        (_tgs(layers=None), CorruptMedia, "layer list"),
        (
            _tgs(assets=[{"id": "img", "w": 10, "h": 10, "u": "/etc/", "p": "passwd"}]),
            UnsupportedMedia,
            "external",
        ),
        (_tgs(assets=[_image_asset(fx.huge_png_header())]), MediaTooLarge, "20000×20000"),
        (_tgs(assets=[_image_asset(fx.not_an_image())]), UnsupportedMedia, "format"),
        (fx.gzip_json([]), UnsupportedMedia, "not a supported"),  # sniffs as nothing: JSON, not an object
        (gzip.compress(b'{"w": NaN, "h": 1}', mtime=0), CorruptMedia, "'w'"),
        (gzip.compress(b"{" + b"\xff\xfe" * 10 + b"}", mtime=0), CorruptMedia, "malformed"),
        (
            gzip.compress(b"{" * 100_000, mtime=0),
            CorruptMedia,
            "malformed",
        ),  # nesting past the recursion limit
    ],
    ids=[
        "no-width",
        "negative-height",
        "fractional-width",
        "bool-width",
        "empty-range",
        "zero-fps",
        "no-layers",
        "external-asset",
        "embedded-bomb-asset",
        "embedded-text-asset",
        "json-list",
        "nan-width",
        "not-utf8",
        "deep-nesting",
    ],
)
def test_tgs_fields_are_validated(data: bytes, error: type[MediaError], words: str) -> None:
    with pytest.raises(error, match=words):
        decode_sticker(data)


def test_tgs_that_rlottie_cannot_load_is_corrupt_media() -> None:
    with pytest.raises(CorruptMedia):
        decode_sticker(_tgs(layers=[{"ty": 4, "shapes": "not a list"}]))  # renders nothing at all


def test_decode_limits_must_be_positive() -> None:
    for bad in (
        {"max_bytes": 0},
        {"max_pixels": -1},
        {"timeout_s": 0.0},
        {"max_frames": 1.5},
        {"timeout_s": 1e999},
    ):
        with pytest.raises(ValueError):
            DecodeLimits(**bad)


# ------------------------------------------------------------------ property: only MediaError escapes

_MAGICS = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"GIF89a",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"RIFF\x00\x00\x00\x00WEBPVP8X",
    b"\xff\xd8\xff",
    b"\x1a\x45\xdf\xa3",
    b"\x1f\x8b\x08\x00",
]
_VALID = [fx.png_bytes(), fx.apng_bytes(), fx.webp_bytes(animated=True), fx.jpeg_bytes(), fx.gif_bytes()]
_VALID += [fx.tgs_bytes(w=64, h=64), fx.webm_bytes()]


def _decodes_or_refuses(data: bytes) -> None:
    try:
        decoded = decode_sticker(data, DecodeLimits(max_pixels=1024 * 1024))
    except MediaError as exc:
        assert str(exc)
        return
    assert decoded.image.mode == "RGBA"
    assert decoded.image.width * decoded.image.height <= 1024 * 1024


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(magic=st.sampled_from(_MAGICS), tail=st.binary(max_size=512))
def test_random_bytes_only_ever_raise_media_error(magic: bytes, tail: bytes) -> None:
    _decodes_or_refuses(magic + tail)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.integers(0, len(_VALID) - 1),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=4),
)
def test_damaged_real_files_only_ever_raise_media_error(
    which: int, cut: float, flips: list[tuple[float, int]]
) -> None:
    data = bytearray(_VALID[which])
    for where, value in flips:
        data[min(len(data) - 1, int(where * len(data)))] = value
    _decodes_or_refuses(bytes(data[: max(1, int(len(data) * (0.5 + cut / 2)))]))


# ------------------------------------------------------------------ the time bound


def test_bounded_decode_kills_a_job_past_the_timeout_and_recovers() -> None:
    start = time.monotonic()
    with pytest.raises(DecodeTimeout, match=r"longer than 0\.3 s"):
        run_bounded(time.sleep, (30.0,), 0.3)  # a stand-in for a decoder stuck in C code
    assert time.monotonic() - start < 3.0
    assert decode_sticker_bounded(fx.png_bytes()).kind == "static"  # a fresh worker took the slot


# A real decode that takes tens of milliseconds (16 MiB of pixels to inflate and send back), against a 1 ms
# timeout: pipe polling has millisecond resolution, so a sub-millisecond decode could legitimately win.
BIG_PNG = fx.png_bytes(1024, 1024)
TINY = DecodeLimits(timeout_s=1e-3)


def test_bounded_real_decode_past_a_tiny_timeout_is_a_decode_timeout() -> None:
    with pytest.raises(DecodeTimeout, match=r"longer than 0\.001 s"):
        decode_sticker_bounded(BIG_PNG, TINY)
    assert decode_sticker_bounded(BIG_PNG).image.size == (1024, 1024)


def test_bounded_decode_survives_a_crashing_decoder() -> None:
    with pytest.raises(CorruptMedia, match="crashed"):
        run_bounded(os.abort, (), 5.0)  # what a segfault in rlottie or libvpx looks like from here
    assert decode_sticker_bounded(fx.webm_bytes()).kind == "video"


async def test_async_decode_runs_off_the_event_loop_concurrently() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        slow = asyncio.get_running_loop().run_in_executor(None, run_bounded, time.sleep, (0.3,), 5.0)
        decoded = await asyncio.gather(*(decode_sticker_async(fx.gif_bytes()) for _ in range(6)), slow)
    finally:
        task.cancel()
    assert [d.source_format for d in decoded[:6]] == ["gif"] * 6
    assert ticks >= 10  # the loop kept running during the 0.3 s job

    with pytest.raises(DecodeTimeout):
        await decode_sticker_async(BIG_PNG, TINY)
    with pytest.raises(UnsupportedMedia):
        await decode_sticker_async(fx.not_an_image())


# ------------------------------------------------------------------ outputs


def test_to_png_bytes_is_canonical_rgba_png() -> None:
    decoded = decode_sticker(fx.jpeg_bytes())
    png = to_png_bytes(decoded.image)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as back:
        assert back.mode == "RGBA"
        assert back.tobytes() == decoded.image.tobytes()
    tagged = decoded.image.copy()
    tagged.info = {"icc_profile": b"\0" * 128, "dpi": (300, 300)}
    assert to_png_bytes(tagged) == png  # same pixels, same bytes: metadata does not leak into the store
    assert to_png_bytes(decoded.image.convert("RGB")) == png
    assert decode_sticker(png).image.tobytes() == decoded.image.tobytes()


def test_contact_sheet_has_the_expected_size_and_draws_labels() -> None:
    images = [decode_sticker(fx.png_bytes(32 + i * 10, 48, RED)).image for i in range(7)]
    labels = [f"{i + 1}. sticker_{i} 😂🎉 ✓ {0.5:.2f}" for i in range(7)]
    sheet = contact_sheet(images, labels, cell=100, columns=5)
    strip = label_height(100)
    assert sheet.size == (500, 2 * (100 + strip))
    assert sheet.getpixel((50, 50))[:3] == RED[:3]  # first sticker in the middle of its cell
    assert sheet.getpixel((2, 2))[:3] == (255, 255, 255)  # white around it
    label_box = sheet.crop((0, 100, 100, 100 + strip)).convert("L")
    assert label_box.getextrema()[0] < 128  # some dark text was drawn in the first label strip
    assert sheet.getpixel((450, 100 + strip + 50))[:3] == (255, 255, 255)  # the unused last cell

    one = contact_sheet(images[:1], ["only 🙂"])
    assert one.size == (160, 160 + label_height(160))
    long = contact_sheet(images[:2], ["x" * 500, ""], cell=64)
    assert long.size == (128, 64 + label_height(64))
    with pytest.raises(ValueError):
        contact_sheet(images[:2], ["one label"])


def test_engine_media_pulls_in_no_torch_nor_platform_sdk() -> None:
    code = (
        "import sys; import engine.media as m;"
        "from tests.auxil import media as fx;"
        "[m.decode_sticker(f()) for f in (fx.png_bytes, fx.tgs_bytes, fx.webm_bytes)];"
        "bad = [n for n in ('torch', 'telegram', 'discord', 'onnxruntime', 'transformers') if n in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == ""


def test_lottie_fixture_is_plain_json() -> None:
    assert json.loads(gzip.decompress(fx.tgs_bytes()))["layers"][0]["ty"] == 4


# ------------------------------------------------------------------ long animations

LONG = [
    pytest.param(lambda: fx.gif_bytes(frames=1000), "gif", id="gif-1000-frames"),
    pytest.param(lambda: fx.apng_bytes(frames=1000), "apng", id="apng-1000-frames"),
    pytest.param(lambda: fx.webp_bytes(animated=True, frames=1000), "webp", id="webp-1000-frames"),
]


@pytest.fixture(scope="module")
def long_animations() -> dict[str, bytes]:
    return {}


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(("factory", "fmt"), LONG)
def test_a_thousand_frame_animation_is_its_first_frame_quickly(
    decode: Decoder, factory: Callable[[], bytes], fmt: str, long_animations: dict[str, bytes]
) -> None:
    """Only the first frame of a long animation is decoded: bounded time whatever the frame count."""
    data = long_animations.setdefault(fmt, factory())
    start = time.monotonic()
    decoded = decode(data, DecodeLimits())
    assert time.monotonic() - start < BAD_INPUT_SECONDS
    assert decoded.source_format == fmt and decoded.kind == "animated"
    assert _near(_centre(decoded.image), fx.FRAME_COLOURS[0])


def test_a_thousand_frame_apng_past_the_frame_limit_is_refused_from_its_header() -> None:
    with pytest.raises(MediaTooLarge, match="1000 frames; the limit is 999"):
        decode_sticker(fx.apng_bytes(frames=1000), DecodeLimits(max_frames=999))


def test_a_decoder_worker_cannot_take_the_machines_memory() -> None:
    """Each worker's data segment is capped: an allocation past it is a clear MediaTooLarge, and the pool
    goes on decoding."""
    from engine.media._bounded import WORKER_MEMORY_BYTES

    start = time.monotonic()
    with pytest.raises(MediaTooLarge, match="MiB of memory"):
        run_bounded(bytearray, (2 * WORKER_MEMORY_BYTES,), 10.0)  # a decoder gone wild, as an allocation
    assert time.monotonic() - start < BAD_INPUT_SECONDS
    assert decode_sticker_bounded(fx.webm_bytes()).kind == "video"
    assert decode_sticker_bounded(fx.tgs_bytes()).kind == "animated"


# ------------------------------------------------------------------ more bad media

MORE_BAD = [
    # id, bytes factory, error class, words the message must contain
    ("zero-bytes", lambda: b"", CorruptMedia, "empty"),
    ("huge-gif-screen", fx.huge_gif_header, MediaTooLarge, "60000×60000 pixels"),
    ("huge-jpeg-header", fx.huge_jpeg_header, MediaTooLarge, "60000×60000 pixels"),
    ("huge-webp-canvas", fx.huge_webp_header, MediaTooLarge, "16384×16384 pixels"),
    ("gif-frame-past-pillow-cap", lambda: fx.gif_with_frame(1, 1, 20000, 20000), MediaTooLarge, "pixels"),
    ("gif-frame-past-our-cap", lambda: fx.gif_with_frame(1, 1, 12000, 12000), MediaTooLarge, "pixels"),
    ("png-ztxt-bomb", fx.png_text_bomb, MediaTooLarge, "metadata chunk"),
    ("png-iccp-bomb", fx.png_icc_bomb, MediaTooLarge, "metadata chunk"),
    ("apng-lying-frame-count", fx.apng_lying_frame_count, MediaTooLarge, "2147483647 frames"),
    ("tgs-bomb-256mib", lambda: fx.gzip_bomb_tgs(256), MediaTooLarge, "16777216 bytes"),
    ("tgs-json-cut", fx.malformed_tgs_json, CorruptMedia, "malformed"),
    (
        "tgs-json-trailing-junk",
        lambda: gzip.compress(json.dumps(fx.lottie_json()).encode() + b"}}", mtime=0),
        CorruptMedia,
        "malformed",
    ),
    ("webm-garbage-1mib", lambda: fx.garbage_webm(1024 * 1024), CorruptMedia, "video sticker"),
]


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(
    ("factory", "error", "words"), [b[1:] for b in MORE_BAD], ids=[b[0] for b in MORE_BAD]
)
def test_more_bad_media_is_refused_clearly_in_bounded_time_and_memory(
    decode: Decoder, factory: Callable[[], bytes], error: type[MediaError], words: str
) -> None:
    data = factory()
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(MediaError) as info:
            decode(data, DecodeLimits())
        elapsed = time.monotonic() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < BAD_INPUT_SECONDS
    assert type(info.value) is error, repr(info.value)
    message = str(info.value)
    assert words in message, message
    assert "Traceback" not in message and len(message) < 300
    # what this process allocated (Pillow's buffers are counted; the bounded worker's are its own)
    assert peak < len(data) + 32 * 1024 * 1024, peak


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize("which", sorted(fx.wrong_magic()))
def test_wrong_magic_is_refused_not_guessed(decode: Decoder, which: str) -> None:
    """One format's magic in front of another format's bytes: refused by the format the magic claims."""
    start = time.monotonic()
    with pytest.raises(MediaError) as info:
        decode(fx.wrong_magic()[which], DecodeLimits())
    assert time.monotonic() - start < BAD_INPUT_SECONDS
    assert type(info.value) in (CorruptMedia, UnsupportedMedia, MediaTooLarge), repr(info.value)
    assert str(info.value) and len(str(info.value)) < 300


def test_a_thousand_frame_gif_decodes_in_bounded_memory() -> None:
    """Only frame 0 is decoded: a 1,000-frame 256×256 GIF (250 MB of RGBA frames in all) costs what one
    frame does."""
    data = fx.gif_bytes(frames=1000, w=256, h=256)
    tracemalloc.start()
    try:
        decoded = decode_sticker(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decoded.kind == "animated" and decoded.image.size == (256, 256)
    assert _near(_centre(decoded.image), fx.FRAME_COLOURS[0])
    assert peak < 16 * 256 * 256 * 4, peak  # a few frames' worth, not a thousand


async def test_a_pack_with_every_kind_of_bad_file_keeps_the_good_stickers(service, tmp_path: Path) -> None:
    """The broken corpus next to good stickers in one pack folder: the good ones (a 1,000-frame GIF among
    them) are imported, each bad one is skipped with its reason, and the import takes bounded time."""
    from engine.errors import SkipKind, SkipReason
    from engine.service import ChatRef

    good = {
        "1f602.png": fx.png_bytes(),
        "1f389.gif": fx.gif_bytes(frames=1000),
        "1f631.tgs": fx.tgs_bytes(w=128, h=128, frames=10),
        "1f923.webm": fx.webm_bytes(),
    }
    bad = {
        "zero.png": b"",
        "cut.png": fx.truncated_png(),
        "huge.png": fx.huge_png_header(),
        "huge-screen.gif": fx.huge_gif_header(),
        "text.png": fx.not_an_image(),
        "bomb.tgs": fx.gzip_bomb_tgs(),
        "ztxt.png": fx.png_text_bomb(),
        "broken.tgs": fx.malformed_tgs_json(),
        "garbage.webm": fx.garbage_webm(),
        "magic.png": fx.wrong_magic()["png-magic-jpeg-body"],
        "lying.apng": fx.apng_lying_frame_count(),
    }
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name, data in {**good, **bad}.items():
        (folder / name).write_bytes(data)
    start = time.monotonic()
    report = await service.add_pack(ChatRef("test", "c"), folder, name="mixed")
    assert time.monotonic() - start < 30.0
    assert report.added == len(good)
    reasons = dict(report.skipped)
    assert set(reasons) == set(bad)
    assert all(
        isinstance(r, SkipReason) and r.detail and "Traceback" not in r.detail for r in reasons.values()
    )
    assert reasons["huge.png"].kind is SkipKind.TOO_LARGE and "pixels" in reasons["huge.png"].detail
    assert reasons["broken.tgs"].kind is SkipKind.DAMAGED and "malformed" in reasons["broken.tgs"].detail
    result = await service.suggest(ChatRef("test", "c"), text="party", cooldown=False)
    assert len({i.platform_sticker_id for i in result.items}) == min(len(good), len(result.items))
    assert {i.platform_sticker_id for i in result.items} <= {Path(n).stem for n in good}
