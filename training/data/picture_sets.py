"""Converters that need no corpus: emoji names and keywords, every emoji in every art style, and public-domain
clip art (text → picture pairs)."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from engine.preprocess import clean_text
from training.data import emoji_art
from training.data.conversion import (
    ConversionReport,
    ConvertOptions,
    RawExample,
    big_pack_emoji,
    drawn_in,
    progress,
    write_converted,
    write_noted_dataset,
)
from training.data.format import CurrentSticker, Sample, StickerEntry, Turn


def convert_emoji_names(data_root: Path | str, out: Path | str, opts: ConvertOptions) -> ConversionReport:
    """Emoji names and keywords as one-turn "dialogues" (``data_root`` is not read): every emoji of the
    default pack, the TweetEval classes and the emotion classes, each keyword → its emoji's sticker.

    Why: the public corpora name 27 distinct emoji, the default pack has ~300; this teaches the sticker tower
    what every emoji of the pack looks like next to its words (CLDR names, emoji-datasource short names,
    emojibase tags), the same supervision as the text baseline but learnt. Per emoji, one keyword (seeded) is
    held out for ``val``.
    """

    cat = emoji_art.load_catalogue(opts.node_modules)
    chars = [c for c in big_pack_emoji(cat, data_root) if drawn_in(cat, cat.lookup(c), opts)]
    if opts.language != "en":
        return _locale_names("emoji-names", out, chars, cat, opts)
    return _keyword_dataset("emoji-names", out, chars, cat, opts)


def _locale_names(
    name: str, out: Path | str, chars: Sequence[str], cat: emoji_art.EmojiCatalogue, opts: ConvertOptions
) -> ConversionReport:
    """``--language L``: the same emoji named in one emojibase-data locale, an evaluation set (``val`` only,
    one sample per emoji the locale names: its label; ``train`` is empty, so a held-out language's names can
    be measured and never trained on). Whether a dialogue tower reads what a message is *about* in that
    language ("Katze" → 🐱), which emotion corpora do not measure."""
    import json

    path = cat.node_modules / "emojibase-data" / opts.language / "data.json"
    if not path.is_file():
        raise FileNotFoundError(f"no emojibase-data locale {opts.language!r} ({path} is missing)")

    def bare(char: str) -> str:  # emojibase and emoji-datasource disagree on some variation selectors
        return char.replace("\ufe0f", "")

    labels: dict[str, str] = {}
    for e in json.loads(path.read_text(encoding="utf-8")):
        if e.get("emoji") and e.get("label"):
            labels.setdefault(bare(e["emoji"]), e["label"])
    val = [RawExample((Turn(text=labels[bare(c)]),), c) for c in chars if bare(c) in labels]
    return write_converted(
        name,
        out,
        {"train": lambda: iter(()), "val": lambda: iter(val)},
        chars,
        opts,
        Counter(),
        {
            "corpus": f"emoji names (emojibase-data locale {opts.language!r} labels)",
            "language": opts.language,
        },
    )


def convert_emoji_art(data_root: Path | str, out: Path | str, opts: ConvertOptions) -> ConversionReport:
    """Every emoji drawn in every given style (~1,900), each name and keyword → its sticker (``data_root`` is
    not read). The corpora name 27 distinct emoji and the default pack ~300: this is what teaches the sticker
    tower what a face, a heart, a gesture or an object looks like in several art styles at once. Per emoji one
    keyword (seeded) is held out for ``val``, whose candidates are all the emoji of the val style."""
    cat = emoji_art.load_catalogue(opts.node_modules)
    chars = [e.char for e in cat.emoji if drawn_in(cat, e, opts)]
    return _keyword_dataset("emoji-art", out, chars, cat, opts)


def _keyword_dataset(
    name: str, out: Path | str, chars: Sequence[str], cat: emoji_art.EmojiCatalogue, opts: ConvertOptions
) -> ConversionReport:
    import random

    rng = random.Random(0)
    train: list[RawExample] = []
    val: list[RawExample] = []
    for char in chars:
        words = [w for w in emoji_art.emoji_keywords(char, cat.node_modules) if w.strip()]
        rng.shuffle(words)
        if len(words) >= 3:
            val.append(RawExample((Turn(text=words[0]),), char))
            words = words[1:]
        train.extend(RawExample((Turn(text=w),), char) for w in words)
    rng.shuffle(train)
    return write_converted(
        name,
        out,
        {"train": lambda: iter(train), "val": lambda: iter(val)},
        chars,
        opts,
        Counter(),
        {"corpus": "emoji names and keywords (emoji-datasource short names, emojibase labels and tags)"},
    )


CLIPART_SET = "openclipart"
CLIPART_SIZE = 128
CLIPART_MAX_PIXELS = 16_000_000


def clipart_text(path: Path, root: Path) -> str:
    """Words of a clip-art file: its folders (category, subcategory) and its title, from the file name
    (``science/astronomy/full_moon_dan_gerhards_01.png`` → "full moon dan gerhards, astronomy, science"); the
    trailing number is dropped. Titles often end with the artist's name: kept, a harmless extra word."""
    import re

    stem = re.sub(r"[_\-]?\d+$", "", path.stem)
    title = " ".join(w for w in re.split(r"[_\-\s]+", stem) if w and not w.isdigit())
    folders = [p.replace("_", " ") for p in reversed(path.relative_to(root).parent.parts)]
    return clean_text(", ".join([title, *folders]).strip(", "))


def convert_openclipart(data_root: Path | str, out: Path | str, opts: ConvertOptions) -> ConversionReport:
    """Public-domain clip art (Debian's ``openclipart-png``) as text → picture pairs: each PNG under
    ``data_root`` (the ``png`` folder: ``apt-get download openclipart-png && dpkg -x …``) is a sticker of the
    set ``openclipart``, and its title and category words are the one-turn "dialogue". Drawn art that is not
    emoji: people, animals, objects, in many hands. Every 20th picture is kept for ``val`` (candidates: the
    whole val pool). ``max_samples`` caps the pictures (evenly over the sorted files)."""
    start = time.monotonic()
    root = Path(data_root)
    files = sorted(p for p in root.rglob("*.png") if p.is_file() and not p.is_symlink())
    if not files:
        raise FileNotFoundError(f"no PNG files under {root} (is --data-root the openclipart png folder?)")
    if opts.max_samples is not None and len(files) > opts.max_samples:
        step = len(files) / opts.max_samples
        files = [files[int(i * step)] for i in range(opts.max_samples)]
    skipped: Counter[str] = Counter()
    entries, rows = _clipart_pictures(files, root, opts, skipped)
    val_pool = tuple(sid for _, sid in rows["val"])
    samples = {
        split: [
            Sample(
                context=(Turn(text=text),),
                current=CurrentSticker(set_id=CLIPART_SET, sticker_id=sid),
                candidates=val_pool if split == "val" else (sid,),
            )
            for text, sid in pairs
        ]
        for split, pairs in rows.items()
    }
    note = {
        "dataset": "openclipart",
        "source": {"corpus": "openclipart-png (Debian), public domain", "path": str(root)},
        "counts": {k: len(v) for k, v in samples.items()},
        "skipped": dict(skipped),
        "art_licences": {CLIPART_SET: {"licence": "public domain (CC0)", "source": "Debian openclipart-png"}},
    }
    write_noted_dataset(out, samples, entries, note, opts)
    report = ConversionReport(dataset="openclipart", out=Path(out))
    report.counts = note["counts"]
    report.skipped = dict(skipped)
    report.styles = {"train": [CLIPART_SET], "val": [CLIPART_SET]}
    report.seconds = time.monotonic() - start
    return report


def _clipart_pictures(
    files: Sequence[Path], root: Path, opts: ConvertOptions, skipped: Counter[str]
) -> tuple[list[StickerEntry], dict[str, list[tuple[str, str]]]]:
    """Each readable picture with a new title, as a sticker (thumbnailed) and its (text, sticker id) row in
    ``train`` or (every 20th file) ``val``; the rest counted in ``skipped``."""
    from PIL import Image

    entries: list[StickerEntry] = []
    rows: dict[str, list[tuple[str, str]]] = {"train": [], "val": []}
    seen_text: set[str] = set()
    for i, path in enumerate(progress(files, opts, "openclipart", total=len(files))):
        text = clipart_text(path, root)
        if not text or text in seen_text:
            skipped["duplicate or empty title"] += 1
            continue
        try:
            with Image.open(path) as im:
                if im.width * im.height > CLIPART_MAX_PIXELS:
                    skipped["over 16 megapixels"] += 1
                    continue
                img = im.convert("RGBA")
                img.thumbnail((CLIPART_SIZE, CLIPART_SIZE), Image.LANCZOS)
        except (OSError, ValueError, Image.DecompressionBombError):
            skipped["unreadable image"] += 1
            continue
        seen_text.add(text)
        sid = f"clip-{hashlib.sha256(str(path.relative_to(root)).encode()).hexdigest()[:12]}"
        entries.append(StickerEntry(set_id=CLIPART_SET, sticker_id=sid, source=img))
        rows["val" if i % 20 == 0 else "train"].append((text, sid))
    return entries, rows
