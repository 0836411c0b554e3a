"""Converters of the dialogue and text corpora: TweetEval emoji, MELD, DailyDialog and GoEmotions (XED is
:mod:`training.data.xed`). Each reads its corpus under ``--data-root`` and hands raw examples to
:func:`training.data.conversion.write_converted` (the emotion corpora through ``write_emotion_corpus``)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from engine.preprocess import clean_text
from training.data import emoji_art
from training.data.conversion import (
    DAILYDIALOG_EMOTIONS,
    EMOTION_EMOJI,
    ConversionReport,
    ConvertOptions,
    RawExample,
    dialogue_examples,
    normalise_emotion,
    progress,
    read_lines,
    read_tweeteval_mapping,
    speaker_id,
    write_converted,
    write_emotion_corpus,
)
from training.data.format import Turn


def convert_tweeteval_emoji(
    data_root: Path | str, out: Path | str, opts: ConvertOptions = ConvertOptions()
) -> ConversionReport:
    """TweetEval emoji prediction → tweet → which of the 20 emoji stickers (train and val)."""
    base = Path(data_root) / "tweeteval" / "datasets" / "emoji"
    class_emoji = read_tweeteval_mapping(base / "mapping.txt")
    skipped: Counter[str] = Counter()

    def split(name: str) -> Callable[[], Iterator[RawExample]]:
        def rows() -> Iterator[RawExample]:
            texts, labels = read_lines(base / f"{name}_text.txt"), read_lines(base / f"{name}_labels.txt")
            if len(texts) != len(labels):
                raise ValueError(f"{base}: {name} has {len(texts)} tweets but {len(labels)} labels")
            for i, (text, label) in enumerate(
                progress(zip(texts, labels, strict=True), opts, f"tweeteval {name}", len(texts))
            ):
                # The emoji was removed from the tweet, but its variation selector (U+FE0F) often stayed.
                tweet = clean_text(text.replace(emoji_art.VS16, ""))
                yield RawExample(context=(Turn(text=tweet, id=str(i)),), emoji=class_emoji[int(label)])

        return rows

    return write_converted(
        "tweeteval-emoji",
        out,
        {"train": split("train"), "val": split("val")},
        class_emoji,
        opts,
        skipped,
        {"corpus": "TweetEval emoji (SemEval-2018 Task 2)", "path": str(base)},
    )


def convert_meld(
    data_root: Path | str, out: Path | str, opts: ConvertOptions = ConvertOptions()
) -> ConversionReport:
    """MELD (Friends, multi-party) → per-utterance emotion stickers; speakers hashed to stable ids."""
    base = Path(data_root) / "meld"
    skipped: Counter[str] = Counter()

    def split(name: str) -> Callable[[], Iterator[RawExample]]:
        def rows() -> Iterator[RawExample]:
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
            for did in progress(sorted(dialogues), opts, f"meld {name}"):
                utts = sorted(dialogues[did])
                yield from dialogue_examples([(text, spk, emo) for _, text, spk, emo in utts], opts)

        return rows

    splits = {"train": split("train"), "val": split("dev")}
    source = {"corpus": "MELD", "path": str(base), "variant": opts.variant}
    return write_emotion_corpus(f"meld-{opts.variant}", out, splits, opts, skipped, source)


def convert_dailydialog(
    data_root: Path | str, out: Path | str, opts: ConvertOptions = ConvertOptions()
) -> ConversionReport:
    """DailyDialog (two speakers, alternating 0/1) → per-utterance emotion stickers. Dialogues whose label
    count differs from their utterance count (train line 7852, a defect of the original) are skipped and
    counted as ``train/label_count_mismatch``."""
    base = Path(data_root) / "dailydialog"
    skipped: Counter[str] = Counter()

    def split(name: str) -> Callable[[], Iterator[RawExample]]:
        def rows() -> Iterator[RawExample]:
            texts = read_lines(base / name / f"dialogues_{name}.txt")
            labels = read_lines(base / name / f"dialogues_emotion_{name}.txt")
            if len(texts) != len(labels):
                raise ValueError(f"{base / name}: {len(texts)} dialogues but {len(labels)} label lines")
            for text, label in progress(
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
                yield from dialogue_examples(
                    [
                        (u, str(i % 2), DAILYDIALOG_EMOTIONS[int(e)])
                        for i, (u, e) in enumerate(zip(utts, emotions, strict=True))
                    ],
                    opts,
                )

        return rows

    splits = {"train": split("train"), "val": split("validation")}
    source = {
        "corpus": "DailyDialog",
        "path": str(base),
        "variant": opts.variant,
        "licence": "CC BY-NC-SA 4.0",
    }
    return write_emotion_corpus(f"dailydialog-{opts.variant}", out, splits, opts, skipped, source)


def read_goemotions_ekman(base: Path) -> list[str]:
    """GoEmotions label id → Ekman class (one of :data:`EMOTIONS`), from ``emotions.txt`` and
    ``ekman_mapping.json``; ``neutral`` stays neutral."""
    names = [n.strip() for n in read_lines(base / "emotions.txt") if n.strip()]
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

    def split(name: str) -> Callable[[], Iterator[RawExample]]:
        def rows() -> Iterator[RawExample]:
            lines = read_lines(base / f"{name}.tsv")
            for line in progress(lines, opts, f"goemotions {name}", len(lines)):
                parts = line.split("\t")
                if len(parts) != 3:
                    raise ValueError(f"{base / name}.tsv: expected text<TAB>labels<TAB>id, got {line[:80]!r}")
                text, labels, cid = parts
                classes = {ekman[int(x)] for x in labels.split(",") if x.strip()}
                if len(classes) != 1:
                    skipped[f"{name}/" + ("multiple_ekman_classes" if classes else "no_label")] += 1
                    continue
                yield RawExample(
                    context=(Turn(text=clean_text(text), id=cid.strip()),), emoji=EMOTION_EMOJI[classes.pop()]
                )

        return rows

    splits = {"train": split("train"), "val": split("dev")}
    source = {"corpus": "GoEmotions (Ekman grouping)", "path": str(base)}
    return write_emotion_corpus("goemotions-ekman", out, splits, opts, skipped, source)
