"""The one definition of model inputs, used by training and serving alike.

Images: any decoded still (see :mod:`engine.media`) → RGBA composited on white → letterboxed to a square of
``ImageSpec.size`` → float32 CHW normalised with ``ImageSpec.mean``/``std``.
Dialogue: the last turns, oldest first, joined with a separator; tokenised with a HF ``tokenizers`` file and
truncated from the *left* so that the most recent words survive the token budget.
Sticker text: the emoji's names (from the maintained ``emoji`` package), tags and caption, in one string.
Emoji in a dialogue: a tokenizer whose vocabulary has no token for them (MiniLM's WordPiece reads every emoji as
``[UNK]``) reads each one's English name instead ("happy birthday 🎂" → "happy birthday birthday cake"), the
names its sticker text uses; a vocabulary that has them (e5's) reads them as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

TURN_SEPARATOR = " [SEP] "


@dataclass(frozen=True)
class ImageSpec:
    size: int = 128
    # EfficientNet-Lite was trained on inputs scaled to about [-1, 1].
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    background: tuple[int, int, int] = (255, 255, 255)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageSpec:
        return cls(
            size=int(d["size"]),
            mean=tuple(d["mean"]),
            std=tuple(d["std"]),
            background=tuple(d.get("background", (255, 255, 255))),
        )


def flatten_alpha(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any mode → RGB, transparent pixels composited onto ``background``."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return img.convert("RGB")


def letterbox(img: Image.Image, size: int, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Resize to fit in ``size``×``size`` keeping the aspect ratio, centred on a ``background`` square."""
    rgb = flatten_alpha(img, background)
    w, h = rgb.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = rgb.resize((nw, nh), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (size, size), background)
    canvas.paste(resized, ((size - nw) // 2, (size - nh) // 2))
    return canvas


def image_to_array(img: Image.Image, spec: ImageSpec) -> np.ndarray:
    """One still → float32 array (3, size, size), normalised."""
    pixels = np.asarray(letterbox(img, spec.size, spec.background), dtype=np.float32) / np.float32(255.0)
    mean, std = np.asarray(spec.mean, dtype=np.float32), np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))


def images_to_batch(images: Iterable[Image.Image], spec: ImageSpec) -> np.ndarray:
    arrays = [image_to_array(im, spec) for im in images]
    if not arrays:
        return np.zeros((0, 3, spec.size, spec.size), dtype=np.float32)
    return np.stack(arrays)


# Invisible characters that carry no meaning for the model and can garble what the bot echoes back: the
# zero-width space, bidirectional embeddings/overrides/isolates, the BOM. ZWJ/ZWNJ (emoji sequences, Persian,
# Indic scripts) and the RTL/LTR marks stay.
_DROPPED = frozenset("\u200b\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")


# What clean_text drops: C0 controls but the three whitespace ones, DEL and C1, lone surrogates, and _DROPPED.
_DROP_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff" + "".join(sorted(_DROPPED)) + "]")


def clean_text(text: str) -> str:
    """Collapse whitespace and drop control characters, lone surrogates (not encodable: a database would
    refuse the text) and invisible direction overrides; keeps every script, RTL and emoji. One regular
    expression and one split, both in C: every request cleans each history turn it reads."""
    return " ".join(_DROP_RE.sub("", text).split())


def printable(text: str, limit: int | None = None) -> str:
    """Text from outside (a file name from a pack, an error quoting one) made safe to show anywhere: every
    control character (a terminal's escape sequences), direction override and lone surrogate becomes a
    visible escape (``\\x1b``, ``\\u202e``); everything else, every script and emoji, is kept. ``limit``: cut to
    that many characters (with "…")."""
    out = []
    for ch in str(text):
        o = ord(ch)
        if o < 32 or 0x7F <= o < 0xA0:
            out.append(f"\\x{o:02x}")
        elif 0xD800 <= o < 0xE000 or ch in _DROPPED:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    shown = "".join(out)
    return shown if limit is None or len(shown) <= limit else shown[: limit - 1] + "…"


def clean_label(text: str | None, limit: int) -> str | None:
    """A name, title, tag or id from outside (a chat title, a pack.json field) as the database may keep it:
    cleaned like message text and cut to its column's length; None when nothing is left."""
    if text is None:
        return None
    return clean_text(str(text)[: 4 * limit])[:limit] or None


def dialogue_to_text(turns: Sequence[str], max_turns: int | None = None) -> str:
    """Turns oldest first → one string; only the last ``max_turns`` are kept."""
    kept = [clean_text(t) for t in turns]
    kept = [t for t in kept if t]
    if max_turns is not None:
        kept = kept[-max_turns:]
    return TURN_SEPARATOR.join(kept)


def emoji_names(emoji_char: str | None) -> list[str]:
    """Human names of an emoji from the maintained ``emoji`` package (English name first, then aliases)."""
    if not emoji_char:
        return []
    import emoji as emoji_pkg

    names: list[str] = []
    for candidate in (emoji_char, emoji_char + "\ufe0f", emoji_char.replace("\ufe0f", "")):
        data = emoji_pkg.EMOJI_DATA.get(candidate)
        if data:
            for key in ("en", "alias"):
                vals = data.get(key) or []
                for v in [vals] if isinstance(vals, str) else vals:
                    name = v.strip(":").replace("_", " ")
                    if name not in names:
                        names.append(name)
            break
    return names


def sticker_text(emoji_char: str | None, tags: Sequence[str] = (), caption: str | None = None) -> str:
    """What a sticker says besides its pixels: emoji names, tags, caption."""
    parts: list[str] = []
    names = emoji_names(emoji_char)
    if names:
        parts.append(", ".join(names))
    tag_list = [clean_text(t) for t in tags if clean_text(t) and clean_text(t) not in names]
    if tag_list:
        parts.append(", ".join(tag_list))
    if caption and clean_text(caption):
        parts.append(clean_text(caption))
    return "; ".join(parts)


# Every code point an emoji can start with lies in these ranges (a cheap test before the ``emoji`` package's
# scan, which costs ~0.1 ms a dialogue): accented letters and curly quotes skip it.
_MAYBE_EMOJI = re.compile("[\u00a9\u00ae\u203c-\u3299\U0001f000-\U0001faff]")


def emoji_as_words(text: str) -> str:
    """``text`` with every emoji replaced by its English name, between spaces ("🎂" → " birthday cake ");
    skin tones and variation selectors are part of the emoji they follow. ASCII text comes back as it is."""
    if text.isascii() or not _MAYBE_EMOJI.search(text):
        return text
    import emoji as emoji_pkg

    def name(chars: str, data: dict[str, Any]) -> str:
        return " " + str(data.get("en", "")).strip(":").replace("_", " ") + " "

    return " ".join(emoji_pkg.replace_emoji(text, replace=name).split())


@dataclass
class Encoded:
    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))

    def as_feed(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        all_inputs = {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "token_type_ids": self.token_type_ids,
        }
        return {n: all_inputs[n] for n in names}


class TextTokenizer:
    """A ``tokenizers`` tokenizer with the project's truncation: keep the end of the dialogue."""

    def __init__(self, tokenizer_file: Path, max_tokens: int = 128) -> None:
        from tokenizers import Tokenizer

        self.max_tokens = max_tokens
        self._tok = Tokenizer.from_file(str(tokenizer_file))
        self._tok.no_padding()
        self._tok.no_truncation()
        pad = self._tok.token_to_id("[PAD]")
        self._pad_id = pad if pad is not None else (self._tok.token_to_id("<pad>") or 0)
        # The leading special tokens of the post-processor's template ([CLS]; or e5's "<s> query:") survive
        # left truncation like the final [SEP] does.
        mask = self._tok.encode("").special_tokens_mask
        self._head = max(1, next((i for i, m in enumerate(mask) if not m), len(mask)) - 1)
        # A vocabulary without emoji reads their names instead (:func:`emoji_as_words`); part of what the
        # tokenizer computes, so training caches key on it
        unk = self._tok.token_to_id("[UNK]")
        self.emoji_words = unk is not None and unk in self._tok.encode("😂 🎂 ❤️").ids
        self.preparation = "emoji-words" if self.emoji_words else ""

    def prepare(self, text: str) -> str:
        """The text as this tokenizer reads it (emoji as words where the vocabulary has none)."""
        return emoji_as_words(text) if self.emoji_words else text

    def encode(self, texts: Sequence[str], max_tokens: int | None = None) -> Encoded:
        limit = max_tokens or self.max_tokens
        encs = self._tok.encode_batch([self.prepare(t) for t in texts])
        rows: list[list[int]] = []
        types: list[list[int]] = []
        for e in encs:
            ids, tt = list(e.ids), list(e.type_ids)
            head = max(1, min(self._head, limit - 1))
            if len(ids) > limit:
                # Keep [CLS] and the last (limit - 2) tokens and [SEP]: the most recent turns matter most.
                ids = ids[:head] + ids[len(ids) - (limit - head) :]
                tt = tt[:head] + tt[len(tt) - (limit - head) :]
            rows.append(ids)
            types.append(tt)
        width = max((len(r) for r in rows), default=1)
        n = len(rows)
        input_ids = np.full((n, width), self._pad_id, dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        type_ids = np.zeros((n, width), dtype=np.int64)
        for i, (r, t) in enumerate(zip(rows, types, strict=True)):
            input_ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
            type_ids[i, : len(t)] = t
        return Encoded(input_ids, mask, type_ids)

    def count_tokens(self, text: str) -> int:
        return len(self._tok.encode(self.prepare(text)).ids)
