"""What is done with decoded stills: the canonical PNG bytes the media store keeps, and contact sheets."""

from __future__ import annotations

import io
import math
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

LABEL_FONT_SIZE = 12
_PAD = 6


def to_png_bytes(image: Image.Image) -> bytes:
    """The canonical storage encoding of a still: RGBA PNG, no metadata, zlib level 6, optimize off.

    The same pixels always give the same bytes (the store keys media by their SHA-256): ``info`` (ICC
    profile, EXIF, text chunks, gamma) is dropped rather than copied into the file.
    """
    rgba = image if image.mode == "RGBA" else image.convert("RGBA")
    clean = Image.frombuffer("RGBA", rgba.size, rgba.tobytes(), "raw", "RGBA", 0, 1)
    buf = io.BytesIO()
    clean.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def contact_sheet(
    images: list[Image.Image], labels: list[str], cell: int = 160, columns: int = 5
) -> Image.Image:
    """A grid of stickers on white, each fitted into a ``cell``×``cell`` square with a one-line label below.

    Size: ``min(columns, n)`` cells wide and ``ceil(n / columns)`` rows of ``cell + label_height(cell)`` pixels
    (one empty cell for no images). Labels are drawn with Pillow's default font; characters it cannot draw
    (emoji, most non-Latin scripts) are dropped and a label too long for the cell is cut with "...".
    """
    if len(images) != len(labels):
        raise ValueError(f"contact_sheet got {len(images)} images but {len(labels)} labels")
    if cell < 16 or columns < 1:
        raise ValueError(f"contact_sheet needs cell >= 16 and columns >= 1, got {cell} and {columns}")
    cols = max(1, min(columns, len(images)))
    rows = max(1, math.ceil(len(images) / cols))
    label_h = label_height(cell)
    sheet = Image.new("RGB", (cols * cell, rows * (cell + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font(LABEL_FONT_SIZE)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        x, y = (i % cols) * cell, (i // cols) * (cell + label_h)
        thumb = image.convert("RGBA")
        thumb.thumbnail((cell - 2 * _PAD, cell - 2 * _PAD), Image.Resampling.LANCZOS)
        sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2), thumb)
        text = _fit(drawable_text(label), font, cell - 2 * _PAD)
        if text:
            draw.text((x + _PAD, y + cell), text, fill="black", font=font)
    return sheet


def label_height(cell: int) -> int:
    """Height of the label strip under each cell of a contact sheet."""
    del cell  # one line of a fixed-size font, whatever the cell
    return LABEL_FONT_SIZE + _PAD


def drawable_text(label: str) -> str:
    """``label`` reduced to what the default font surely draws: printable ASCII, whitespace collapsed."""
    kept = "".join(ch if (" " <= ch <= "~") else " " for ch in label)
    return " ".join(kept.split())


def _fit(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    text = text[:256]
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text.rstrip() + "..." if text else ""


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)
