"""What every corpus converter shares: the 7 emotion classes' emoji, the options, the report, and
:func:`write_converted`, which gives each raw example its art style and candidates and writes the dataset."""

from __future__ import annotations

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
from training.emotions import EMOTIONS  # the project's 7 classes, in the model's order

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
    # XED: "en", "de,es", "train" (all but the held-out languages), "held-out"; emoji names: an emojibase-data
    # locale (other than "en": an evaluation set of that locale's names)
    language: str = "en"

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
class RawExample:
    """A converted example before it has a style: the context, the class emoji, who sends the sticker."""

    context: tuple[Turn, ...]
    emoji: str
    from_id: str | None = None


def read_lines(path: Path) -> list[str]:
    """A text file's lines split on "\\n" only (tweets may hold U+2028 or U+0085, which ``splitlines``
    would split on), without the empty piece after the final newline."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (does --data-root hold the corpora? see docs/FORMAT.md)")
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.rstrip("\r") for ln in lines]


def progress(it: Iterable[Any], opts: ConvertOptions, desc: str, total: int | None = None) -> Iterable[Any]:
    return tqdm(it, desc=desc, total=total, disable=not opts.progress, unit=" rows", leave=False)


def write_converted(
    dataset: str,
    out: Path | str,
    splits: Mapping[str, Callable[[], Iterator[RawExample]]],
    class_emoji: Sequence[str],
    opts: ConvertOptions,
    skipped: Counter[str],
    source: Mapping[str, Any],
) -> ConversionReport:
    """Give each raw example its style and candidates, then write the dataset and its ``conversion.json``.

    ``skipped`` is read after every split has been drawn: the converters' generators count into it."""
    start = time.monotonic()
    out = Path(out)
    cat = emoji_art.load_catalogue(opts.node_modules)
    classes = [cat.lookup(e) for e in class_emoji]
    pool = _candidate_pool(cat, classes, opts)
    ids = {s: {c.char: emoji_art.sticker_id(s, c) for c in pool} for s in opts.all_styles()}
    stickers = emoji_art.emoji_sticker_entries([c.char for c in pool], opts.all_styles(), cat.node_modules)
    report = ConversionReport(dataset=dataset, out=out)
    samples: dict[str, list[Sample]] = {}
    for split, make in splits.items():
        styles = opts.styles_for(split)
        samples[split], counts = _styled(make(), styles, ids, cat, opts.max_samples)
        report.classes[split] = {c.char: counts[c.char] for c in classes}
        report.styles[split] = list(styles)
    report.skipped = dict(skipped)
    report.counts = {split: len(rows) for split, rows in samples.items()}
    note = {
        "dataset": dataset,
        "source": dict(source),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "classes": [{"emoji": c.char, "name": c.name} for c in classes],
        "art_licences": {s: asdict(emoji_art.STYLE_INFO[s]) for s in opts.all_styles()},
    }
    note["options"].pop("progress", None)
    note["options"].pop("overwrite", None)
    note.update(counts=report.counts, classes_per_split=report.classes, skipped=report.skipped)
    write_noted_dataset(out, samples, stickers, note, opts)
    report.seconds = time.monotonic() - start
    return report


def write_emotion_corpus(
    dataset: str,
    out: Path | str,
    splits: Mapping[str, Callable[[], Iterator[RawExample]]],
    opts: ConvertOptions,
    skipped: Counter[str],
    source: Mapping[str, Any],
) -> ConversionReport:
    """:func:`write_converted` for a corpus labelled with the emotion classes: their stickers are the
    :data:`EMOTION_EMOJI`, in :data:`EMOTIONS`' order."""
    return write_converted(dataset, out, splits, [EMOTION_EMOJI[e] for e in EMOTIONS], opts, skipped, source)


def write_noted_dataset(
    out: Path | str,
    samples: Mapping[str, Sequence[Sample]],
    stickers: Iterable[StickerEntry],
    note: Mapping[str, Any],
    opts: ConvertOptions,
) -> None:
    """Write a converted dataset with its ``conversion.json`` (where it came from, with what options, what was
    skipped); an existing one is replaced only with ``opts.overwrite``."""
    write_dataset(
        out,
        samples,
        stickers,
        extra_files={"conversion.json": json.dumps(note, ensure_ascii=False, indent=1) + "\n"},
        overwrite=opts.overwrite,
    )


def _candidate_pool(
    cat: emoji_art.EmojiCatalogue, classes: list[emoji_art.EmojiInfo], opts: ConvertOptions
) -> list[emoji_art.EmojiInfo]:
    """The class emoji (no repeats), and with ``pack_candidates`` the rest of the big pack drawn in every style."""
    pool = list({c.unified: c for c in classes}.values())
    if opts.pack_candidates:
        seen = {c.unified for c in pool}
        pool += [
            e
            for e in map(cat.lookup, big_pack_emoji(cat, ""))
            if e.unified not in seen and drawn_in(cat, e, opts)
        ]
    return pool


def _styled(
    raws: Iterator[RawExample],
    styles: Sequence[str],
    ids: Mapping[str, Mapping[str, str]],
    cat: emoji_art.EmojiCatalogue,
    max_samples: int | None,
) -> tuple[list[Sample], Counter[str]]:
    """One split's samples, styles round-robin, candidates every class sticker of the style; and the count
    of samples per class emoji."""
    counts: Counter[str] = Counter()
    rows: list[Sample] = []
    for i, raw in enumerate(islice(raws, max_samples)):
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
    return rows, counts


def drawn_in(cat: emoji_art.EmojiCatalogue, info: emoji_art.EmojiInfo, opts: ConvertOptions) -> bool:
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


def dialogue_examples(
    utterances: Sequence[tuple[str, str | None, str]],  # (text, speaker id, emotion), in order
    opts: ConvertOptions,
) -> Iterator[RawExample]:
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
        yield RawExample(
            context=tuple(context[-opts.context_turns :]), emoji=emotion_emoji(emotion), from_id=spk
        )


def read_tweeteval_mapping(path: Path) -> list[str]:
    """``mapping.txt`` ("id\\temoji\\tname\\t") → the emoji in id order."""
    out: dict[int, str] = {}
    for line in read_lines(path):
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0].strip():
            out[int(parts[0])] = parts[1].strip()
    if sorted(out) != list(range(len(out))):
        raise ValueError(f"{path}: label ids are not 0..{len(out) - 1}")
    return [out[i] for i in range(len(out))]
