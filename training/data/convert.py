"""Converters from the public corpora (``--data-root``, see docs/FORMAT.md) to the dataset format.

Each writes a dataset folder with ``train`` and ``val`` splits (never ``test``: the test splits are held out)
whose stickers are emoji artwork (:mod:`training.data.emoji_art`): one sticker set per art style, and a class
is the emoji of its sticker, so the metrics' "class" (``sticker_alt``) is the corpus label.

- TweetEval emoji: context = the tweet, sticker = the emoji removed from it, candidates = the 20 class emoji of
  the sample's style, so R@1 is 20-way accuracy and macro-F1 compares with the TweetEval leaderboard.
- MELD, DailyDialog: variant ``accompany`` (context = utterances up to and including t, the sticker goes with
  utterance t) or ``reply`` (context = utterances before t, the sticker is the emotion of utterance t; t = 0 is
  skipped). Candidates = the 7 emotion stickers of the style.
- GoEmotions: each comment's single Ekman class (comments whose labels span several classes are dropped).

Styles: each sample of a split gets one style, round-robin over the training styles (so one corpus yields
several sticker sets, not several copies of itself); with ``unseen_style`` the ``val`` split uses only that
style, which training never sees. Every style's class stickers are written.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engine.preprocess import clean_text
from training.data import emoji_art
from training.data.format import CurrentSticker, Sample, StickerEntry, Turn, write_dataset
from training.data.xed import convert_xed
from training.emotions import EMOTIONS  # the project's 7 classes, in the model's order

# ------------------------------------------------------------------------------------------- emotions
# One canonical emoji per class (keys in EMOTIONS' order): the face whose Unicode name and emojibase tags say
# the emotion most plainly while keeping clear of its neighbours.
EMOTION_EMOJI: dict[str, str] = {
    # 😮 face with open mouth: tags "surprised", "wow", "omg". 😲 (astonished) lacks "surprised" in its tags;
    # 😱 is tagged fear as much as surprise.
    "surprise": "😮",
    # 😄 grinning face with smiling eyes: tags "happy", "laugh", "smile": plain happiness. 😂 is laughter and
    # 😊 contentment/blushing (both are TweetEval classes with their own meaning); 😀 smiles without the eyes.
    "happiness": "😄",
    # 🤢 nauseated face: Unicode has no "disgusted face"; tags "gross", "nasty". 🤮 is vomiting, i.e. illness.
    "disgust": "🤢",
    # 😨 fearful face: the name itself; tags "afraid", "scared", "fear". 😱 doubles as shock (surprise).
    "fear": "😨",
    # 😢 crying face: tags "sad", "unhappy". 😭 is sobbing (intense), 😞 disappointment (a GoEmotions sub-class).
    "sadness": "😢",
    # 😠 angry face: tags "anger", "angry", "mad". 😡 (enraged, red) is rage; 🤬 is cursing.
    "anger": "😠",
    # 😐 neutral face: the name itself; tags "neutral", "meh", "deadpan".
    "neutral": "😐",
}

EMOTION_ALIASES: dict[str, str] = {
    "joy": "happiness",
    "happy": "happiness",
    "no emotion": "neutral",
    "none": "neutral",
}

DAILYDIALOG_EMOTIONS = ("neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise")  # ids 0-6
VARIANTS = ("accompany", "reply")
DATASETS = (
    "tweeteval-emoji",
    "meld",
    "dailydialog",
    "goemotions",
    "xed",
    "emoji-names",
    "emoji-art",
    "openclipart",
)
DEFAULT_CONTEXT_TURNS = 8


def normalise_emotion(label: str) -> str:
    """A corpus' emotion name → one of :data:`EMOTIONS` (MELD's "joy" is "happiness", DailyDialog's "no
    emotion" is "neutral")."""
    name = label.strip().lower()
    name = EMOTION_ALIASES.get(name, name)
    if name not in EMOTION_EMOJI:
        raise ValueError(f"unknown emotion {label!r}; expected one of {', '.join(EMOTIONS)}")
    return name


def emotion_emoji(label: str) -> str:
    return EMOTION_EMOJI[normalise_emotion(label)]


def speaker_id(name: str) -> str:
    """A speaker name → a stable integer id (first 8 hex digits of its SHA-256), as a string."""
    return str(int(hashlib.sha256(name.strip().encode("utf-8")).hexdigest()[:8], 16))


# ------------------------------------------------------------------------------------------- options
@dataclass(frozen=True)
class ConvertOptions:
    styles: tuple[str, ...] = ("google",)
    unseen_style: str | None = None  # if set, the val split uses only this style; train never sees it
    max_samples: int | None = None  # per split, for quick runs
    context_turns: int = DEFAULT_CONTEXT_TURNS
    variant: str = "accompany"  # MELD and DailyDialog only
    node_modules: Path | None = None
    overwrite: bool = False
    progress: bool = True
    # Rank among a whole pack: every sample's candidates are all the big pack's emoji of its style (the
    # default pack, the TweetEval classes and the emotion classes, ~330), not only the corpus's classes.
    pack_candidates: bool = False
    language: str = "en"  # XED only: "en", "de,es", "train" (all but the held-out languages), "held-out"

    def __post_init__(self) -> None:
        object.__setattr__(self, "styles", tuple(self.styles))
        if not self.styles:
            raise ValueError("give at least one style")
        for s in (*self.styles, *([self.unseen_style] if self.unseen_style else [])):
            if s not in emoji_art.STYLES:
                raise ValueError(f"unknown style {s!r}; choose from {', '.join(emoji_art.STYLES)}")
        if len(set(self.styles)) != len(self.styles):
            raise ValueError(f"styles repeat: {self.styles}")
        if self.unseen_style in self.styles:
            raise ValueError(f"the unseen style {self.unseen_style!r} is also a training style")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {self.variant!r}")
        if self.context_turns < 1:
            raise ValueError("context_turns must be at least 1")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError("max_samples must be at least 1")

    def styles_for(self, split: str) -> tuple[str, ...]:
        if split == "val" and self.unseen_style:
            return (self.unseen_style,)
        return self.styles

    def all_styles(self) -> tuple[str, ...]:
        return (*self.styles, *([self.unseen_style] if self.unseen_style else []))


@dataclass
class ConversionReport:
    dataset: str
    out: Path
    counts: dict[str, int] = field(default_factory=dict)  # split → samples
    classes: dict[str, dict[str, int]] = field(default_factory=dict)  # split → emoji → samples
    skipped: dict[str, int] = field(default_factory=dict)  # "<source split>/<reason>" → count
    styles: dict[str, list[str]] = field(default_factory=dict)  # split → styles used
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        return d


@dataclass(frozen=True)
class _Raw:
    """A converted example before it has a style: the context, the class emoji, who sends the sticker."""

    context: tuple[Turn, ...]
    emoji: str
    from_id: str | None = None


# ------------------------------------------------------------------------------------------- common
def _lines(path: Path) -> list[str]:
    """A text file's lines split on "\\n" only (tweets may hold U+2028 or U+0085, which ``splitlines``
    would split on), without the empty piece after the final newline."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (does --data-root hold the corpora? see docs/FORMAT.md)")
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.rstrip("\r") for ln in lines]


def _progress(it: Iterable[Any], opts: ConvertOptions, desc: str, total: int | None = None) -> Iterable[Any]:
    return tqdm(it, desc=desc, total=total, disable=not opts.progress, unit=" rows", leave=False)


def _convert(
    dataset: str,
    out: Path | str,
    splits: Mapping[str, Callable[[], Iterator[_Raw]]],
    class_emoji: Sequence[str],
    opts: ConvertOptions,
    skipped: Counter[str],
    source: Mapping[str, Any],
) -> ConversionReport:
    """Give each raw example its style and candidates, then write the dataset and its ``conversion.json``."""
    start = time.monotonic()
    out = Path(out)
    cat = emoji_art.load_catalogue(opts.node_modules)
    classes = [cat.lookup(e) for e in class_emoji]
    pool = list({c.unified: c for c in classes}.values())
    if opts.pack_candidates:
        seen = {c.unified for c in pool}
        pool += [
            e
            for e in map(cat.lookup, big_pack_emoji(cat, ""))
            if e.unified not in seen and _drawn_in(cat, e, opts)
        ]
    ids = {s: {c.char: emoji_art.sticker_id(s, c) for c in pool} for s in opts.all_styles()}
    stickers = emoji_art.emoji_sticker_entries([c.char for c in pool], opts.all_styles(), cat.node_modules)
    report = ConversionReport(dataset=dataset, out=out)
    samples: dict[str, list[Sample]] = {}
    for split, make in splits.items():
        styles = opts.styles_for(split)
        counts: Counter[str] = Counter()
        rows: list[Sample] = []
        for i, raw in enumerate(islice(make(), opts.max_samples)):
            style = styles[i % len(styles)]
            info = cat.lookup(raw.emoji)
            rows.append(
                Sample(
                    context=raw.context,
                    current=CurrentSticker(
                        set_id=style, sticker_id=ids[style][info.char], alt=info.char, from_id=raw.from_id
                    ),
                    candidates=tuple(ids[style].values()),
                )
            )
            counts[info.char] += 1
        samples[split] = rows
        report.classes[split] = {c.char: counts[c.char] for c in classes}
        report.styles[split] = list(styles)
    report.skipped = dict(skipped)
    note = {
        "dataset": dataset,
        "source": dict(source),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "classes": [{"emoji": c.char, "name": c.name} for c in classes],
        "art_licences": {s: asdict(emoji_art.STYLE_INFO[s]) for s in opts.all_styles()},
    }
    note["options"].pop("progress", None)
    note["options"].pop("overwrite", None)
    report.counts = {split: len(rows) for split, rows in samples.items()}
    note.update(counts=report.counts, classes_per_split=report.classes, skipped=report.skipped)
    write_dataset(
        out,
        samples,
        stickers,
        extra_files={"conversion.json": json.dumps(note, ensure_ascii=False, indent=1) + "\n"},
        overwrite=opts.overwrite,
    )
    report.seconds = time.monotonic() - start
    return report


def _drawn_in(cat: emoji_art.EmojiCatalogue, info: emoji_art.EmojiInfo, opts: ConvertOptions) -> bool:
    return all(cat.has_image(info, st) for st in opts.all_styles())


# TweetEval emoji's 20 classes in label order (its mapping.txt), so that the big pack is the same whether or
# not the corpus is at hand.
TWEETEVAL_EMOJI = [
    "❤",
    "😍",
    "😂",
    "💕",
    "🔥",
    "😊",
    "😎",
    "✨",
    "💙",
    "😘",
    "📷",
    "🇺🇸",
    "☀",
    "💜",
    "😉",
    "💯",
    "😁",
    "🎄",
    "📸",
    "😜",
]


def big_pack_emoji(cat: emoji_art.EmojiCatalogue, data_root: Path | str) -> list[str]:
    """The emoji of a realistic big pack (~330): the default pack's expressive emoji, the 20 TweetEval classes
    and the 7 emotion classes, in that order, no repeats (emoji the catalogue lacks are left out)."""
    chars = [info.char for info in emoji_art.default_pack_emoji(node_modules=cat.node_modules)]
    te_mapping = Path(data_root) / "tweeteval" / "datasets" / "emoji" / "mapping.txt"
    chars += read_tweeteval_mapping(te_mapping) if data_root and te_mapping.is_file() else TWEETEVAL_EMOJI
    chars += [EMOTION_EMOJI[e] for e in EMOTIONS]
    return list(dict.fromkeys(i.char for i in map(cat.get, chars) if i is not None))


def _dialogue_examples(
    utterances: Sequence[tuple[str, str | None, str]],  # (text, speaker id, emotion), in order
    opts: ConvertOptions,
) -> Iterator[_Raw]:
    """The examples of one dialogue: turns get ids 0..n-1; the context keeps the last ``context_turns``."""
    turns = [
        Turn(text=clean_text(text), id=str(i), from_id=spk) for i, (text, spk, _) in enumerate(utterances)
    ]
    for t, (_, spk, emotion) in enumerate(utterances):
        if opts.variant == "accompany":
            context = turns[: t + 1]
        else:
            if t == 0:
                continue
            context = turns[:t]
        yield _Raw(context=tuple(context[-opts.context_turns :]), emoji=emotion_emoji(emotion), from_id=spk)


# ------------------------------------------------------------------------------------------- TweetEval
def read_tweeteval_mapping(path: Path) -> list[str]:
    """``mapping.txt`` ("id\\temoji\\tname\\t") → the emoji in id order."""
    out: dict[int, str] = {}
    for line in _lines(path):
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0].strip():
            out[int(parts[0])] = parts[1].strip()
    if sorted(out) != list(range(len(out))):
        raise ValueError(f"{path}: label ids are not 0..{len(out) - 1}")
    return [out[i] for i in range(len(out))]


def convert_tweeteval_emoji(
    data_root: Path | str, out: Path | str, opts: ConvertOptions = ConvertOptions()
) -> ConversionReport:
    """TweetEval emoji prediction → tweet → which of the 20 emoji stickers (train and val)."""
    base = Path(data_root) / "tweeteval" / "datasets" / "emoji"
    class_emoji = read_tweeteval_mapping(base / "mapping.txt")
    skipped: Counter[str] = Counter()

    def split(name: str) -> Callable[[], Iterator[_Raw]]:
        def rows() -> Iterator[_Raw]:
            texts, labels = _lines(base / f"{name}_text.txt"), _lines(base / f"{name}_labels.txt")
            if len(texts) != len(labels):
                raise ValueError(f"{base}: {name} has {len(texts)} tweets but {len(labels)} labels")
            for i, (text, label) in enumerate(
                _progress(zip(texts, labels, strict=True), opts, f"tweeteval {name}", len(texts))
            ):
                # The emoji was removed from the tweet, but its variation selector (U+FE0F) often stayed.
                tweet = clean_text(text.replace(emoji_art.VS16, ""))
                yield _Raw(context=(Turn(text=tweet, id=str(i)),), emoji=class_emoji[int(label)])

        return rows

    return _convert(
        "tweeteval-emoji",
        out,
        {"train": split("train"), "val": split("val")},
        class_emoji,
        opts,
        skipped,
        {"corpus": "TweetEval emoji (SemEval-2018 Task 2)", "path": str(base)},
    )


# ------------------------------------------------------------------------------------------- MELD
def convert_meld(
    data_root: Path | str, out: Path | str, opts: ConvertOptions = ConvertOptions()
) -> ConversionReport:
    """MELD (Friends, multi-party) → per-utterance emotion stickers; speakers hashed to stable ids."""
    base = Path(data_root) / "meld"
    skipped: Counter[str] = Counter()

    def split(name: str) -> Callable[[], Iterator[_Raw]]:
        def rows() -> Iterator[_Raw]:
            path = base / f"{name}_sent_emo.csv"
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} not found (does --data-root hold the corpora? see docs/FORMAT.md)"
                )
            dialogues: dict[int, list[tuple[int, str, str | None, str]]] = {}
            with path.open(encoding="utf-8-sig", newline="") as f:
                for r in csv.DictReader(f):
                    dialogues.setdefault(int(r["Dialogue_ID"]), []).append(
                        (int(r["Utterance_ID"]), r["Utterance"], speaker_id(r["Speaker"]), r["Emotion"])
                    )
            for did in _progress(sorted(dialogues), opts, f"meld {name}"):
                utts = sorted(dialogues[did])
                yield from _dialogue_examples([(text, spk, emo) for _, text, spk, emo in utts], opts)

        return rows

    return _convert(
        f"meld-{opts.variant}",
        out,
        {"train": split("train"), "val": split("dev")},
        [EMOTION_EMOJI[e] for e in EMOTIONS],
        opts,
        skipped,
        {"corpus": "MELD", "path": str(base), "variant": opts.variant},
    )


# ------------------------------------------------------------------------------------------- DailyDialog
def convert_dailydialog(
    data_root: Path | str, out: Path | str, opts: ConvertOptions = ConvertOptions()
) -> ConversionReport:
    """DailyDialog (two speakers, alternating 0/1) → per-utterance emotion stickers. Dialogues whose label
    count differs from their utterance count (train line 7852, a defect of the original) are skipped and
    counted as ``train/label_count_mismatch``."""
    base = Path(data_root) / "dailydialog"
    skipped: Counter[str] = Counter()

    def split(name: str) -> Callable[[], Iterator[_Raw]]:
        def rows() -> Iterator[_Raw]:
            texts = _lines(base / name / f"dialogues_{name}.txt")
            labels = _lines(base / name / f"dialogues_emotion_{name}.txt")
            if len(texts) != len(labels):
                raise ValueError(f"{base / name}: {len(texts)} dialogues but {len(labels)} label lines")
            for text, label in _progress(
                zip(texts, labels, strict=True), opts, f"dailydialog {name}", len(texts)
            ):
                utts = [u.strip() for u in text.split("__eou__")]
                if utts and not utts[-1]:
                    utts.pop()  # each utterance ends with __eou__
                emotions = label.split()
                if not utts:
                    continue
                if len(utts) != len(emotions):
                    skipped[f"{name}/label_count_mismatch"] += 1
                    continue
                yield from _dialogue_examples(
                    [
                        (u, str(i % 2), DAILYDIALOG_EMOTIONS[int(e)])
                        for i, (u, e) in enumerate(zip(utts, emotions, strict=True))
                    ],
                    opts,
                )

        return rows

    return _convert(
        f"dailydialog-{opts.variant}",
        out,
        {"train": split("train"), "val": split("validation")},
        [EMOTION_EMOJI[e] for e in EMOTIONS],
        opts,
        skipped,
        {"corpus": "DailyDialog", "path": str(base), "variant": opts.variant, "licence": "CC BY-NC-SA 4.0"},
    )


# ------------------------------------------------------------------------------------------- GoEmotions
def read_goemotions_ekman(base: Path) -> list[str]:
    """GoEmotions label id → Ekman class (one of :data:`EMOTIONS`), from ``emotions.txt`` and
    ``ekman_mapping.json``; ``neutral`` stays neutral."""
    names = [n.strip() for n in _lines(base / "emotions.txt") if n.strip()]
    mapping = json.loads((base / "ekman_mapping.json").read_text(encoding="utf-8"))
    to_ekman = {fine: normalise_emotion(ekman) for ekman, fines in mapping.items() for fine in fines}
    to_ekman["neutral"] = "neutral"
    missing = [n for n in names if n not in to_ekman]
    if missing:
        raise ValueError(f"{base}: ekman_mapping.json does not map {missing}")
    return [to_ekman[n] for n in names]


def convert_goemotions(
    data_root: Path | str, out: Path | str, opts: ConvertOptions = ConvertOptions()
) -> ConversionReport:
    """GoEmotions → each comment's Ekman class; comments whose labels map to several classes are dropped
    (counted as ``<split>/multiple_ekman_classes``)."""
    base = Path(data_root) / "goemotions"
    ekman = read_goemotions_ekman(base)
    skipped: Counter[str] = Counter()

    def split(name: str) -> Callable[[], Iterator[_Raw]]:
        def rows() -> Iterator[_Raw]:
            lines = _lines(base / f"{name}.tsv")
            for line in _progress(lines, opts, f"goemotions {name}", len(lines)):
                parts = line.split("\t")
                if len(parts) != 3:
                    raise ValueError(f"{base / name}.tsv: expected text<TAB>labels<TAB>id, got {line[:80]!r}")
                text, labels, cid = parts
                classes = {ekman[int(x)] for x in labels.split(",") if x.strip()}
                if len(classes) != 1:
                    skipped[f"{name}/" + ("multiple_ekman_classes" if classes else "no_label")] += 1
                    continue
                yield _Raw(
                    context=(Turn(text=clean_text(text), id=cid.strip()),), emoji=EMOTION_EMOJI[classes.pop()]
                )

        return rows

    return _convert(
        "goemotions-ekman",
        out,
        {"train": split("train"), "val": split("dev")},
        [EMOTION_EMOJI[e] for e in EMOTIONS],
        opts,
        skipped,
        {"corpus": "GoEmotions (Ekman grouping)", "path": str(base)},
    )


def convert_emoji_names(data_root: Path | str, out: Path | str, opts: ConvertOptions) -> ConversionReport:
    """Emoji names and keywords as one-turn "dialogues" (``data_root`` is not read): every emoji of the
    default pack, the TweetEval classes and the emotion classes, each keyword → its emoji's sticker.

    Why: the public corpora name 27 distinct emoji, the default pack has ~300; this teaches the sticker tower
    what every emoji of the pack looks like next to its words (CLDR names, emoji-datasource short names,
    emojibase tags), the same supervision as the text baseline but learnt. Per emoji, one keyword (seeded) is
    held out for ``val``.
    """

    cat = emoji_art.load_catalogue(opts.node_modules)
    chars = [c for c in big_pack_emoji(cat, data_root) if _drawn_in(cat, cat.lookup(c), opts)]
    return _keyword_dataset("emoji-names", out, chars, cat, opts)


def convert_emoji_art(data_root: Path | str, out: Path | str, opts: ConvertOptions) -> ConversionReport:
    """Every emoji drawn in every given style (~1,900), each name and keyword → its sticker (``data_root`` is
    not read). The corpora name 27 distinct emoji and the default pack ~300: this is what teaches the sticker
    tower what a face, a heart, a gesture or an object looks like in several art styles at once. Per emoji one
    keyword (seeded) is held out for ``val``, whose candidates are all the emoji of the val style."""
    cat = emoji_art.load_catalogue(opts.node_modules)
    chars = [e.char for e in cat.emoji if _drawn_in(cat, e, opts)]
    return _keyword_dataset("emoji-art", out, chars, cat, opts)


def _keyword_dataset(
    name: str, out: Path | str, chars: Sequence[str], cat: emoji_art.EmojiCatalogue, opts: ConvertOptions
) -> ConversionReport:
    import random

    rng = random.Random(0)
    train: list[_Raw] = []
    val: list[_Raw] = []
    for char in chars:
        words = [w for w in emoji_art.emoji_keywords(char, cat.node_modules) if w.strip()]
        rng.shuffle(words)
        if len(words) >= 3:
            val.append(_Raw((Turn(text=words[0]),), char))
            words = words[1:]
        train.extend(_Raw((Turn(text=w),), char) for w in words)
    rng.shuffle(train)
    return _convert(
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
    from PIL import Image

    start = time.monotonic()
    root = Path(data_root)
    files = sorted(p for p in root.rglob("*.png") if p.is_file() and not p.is_symlink())
    if not files:
        raise FileNotFoundError(f"no PNG files under {root} (is --data-root the openclipart png folder?)")
    if opts.max_samples is not None and len(files) > opts.max_samples:
        step = len(files) / opts.max_samples
        files = [files[int(i * step)] for i in range(opts.max_samples)]
    skipped: Counter[str] = Counter()
    entries: list[StickerEntry] = []
    rows: dict[str, list[tuple[str, str]]] = {"train": [], "val": []}
    seen_text: set[str] = set()
    for i, path in enumerate(_progress(files, opts, "openclipart", total=len(files))):
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
    write_dataset(
        out,
        samples,
        entries,
        extra_files={"conversion.json": json.dumps(note, ensure_ascii=False, indent=1) + "\n"},
        overwrite=opts.overwrite,
    )
    report = ConversionReport(dataset="openclipart", out=Path(out))
    report.counts = note["counts"]
    report.skipped = dict(skipped)
    report.styles = {"train": [CLIPART_SET], "val": [CLIPART_SET]}
    report.seconds = time.monotonic() - start
    return report


CONVERTERS: dict[str, Callable[[Path | str, Path | str, ConvertOptions], ConversionReport]] = {
    "emoji-names": convert_emoji_names,
    "emoji-art": convert_emoji_art,
    "openclipart": convert_openclipart,
    "tweeteval-emoji": convert_tweeteval_emoji,
    "meld": convert_meld,
    "dailydialog": convert_dailydialog,
    "goemotions": convert_goemotions,
    "xed": convert_xed,
}


def convert(
    dataset: str, data_root: Path | str, out: Path | str, opts: ConvertOptions = ConvertOptions()
) -> ConversionReport:
    """Run one converter by name (:data:`DATASETS`)."""
    try:
        fn = CONVERTERS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}") from None
    return fn(data_root, out, opts)
