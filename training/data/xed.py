"""XED (Helsinki-NLP, CC BY 4.0): movie subtitle lines with Plutchik emotions → one-turn emotion samples.

The XED folder of the corpora (``--data-root``/``xed/``) holds ``AnnotatedData/{en,fi}-annotated.tsv`` (human annotation), ``neu_{en,fi}.txt``
(neutral lines, the text in the second column) and ``Projections/<lang>-projections.tsv`` (labels projected through aligned
subtitles). Labels: anger 1, anticipation 2, disgust 3, fear 4, joy 5, sadness 6, surprise 7, trust 8; neutral
0 or 9. Lines are multi-label.

Mapping onto the project's 7 stickers: the six Ekman emotions map one to one (joy → happiness); anticipation and
trust have no Ekman class and are **dropped** from a line's labels. A line is kept when what remains is exactly
one class (as GoEmotions' Ekman grouping is used: several classes → skipped ``multiple_ekman_classes``; only
anticipation/trust → skipped ``no_ekman_class``). Neutral lines are neutral.

Languages: ``en`` and ``fi`` read the annotated file, the neutral file and their projections; every other
language its projections (no neutral class there). Splits are deterministic: a line goes to ``val`` when the
first byte of SHA-256(language, text) is below 26 (~10%); a text seen twice in a language is kept once. The
**held-out languages** (:data:`HELD_OUT_LANGUAGES`: German, Spanish, Greek, Hebrew — two Latin-script, one
Greek, one right-to-left; the languages of the original XED release that are not in the corpora folder here, among them
Russian, Portuguese and Arabic, are unavailable anyway) are never trained on: all their lines are ``val`` and
their ``train`` split is empty. Note: projected lines are translations of the same films' subtitles, so a
held-out line may translate an English training line (that is cross-lingual transfer, the thing measured).

The files carry noise: CRLF line ends, CSV-style quoting (``"..."`` with ``""``), stray alignment-metadata rows
(``en/…xml.gz<TAB>de/…xml.gz<TAB>…``) and broken quoted lines; those are skipped and counted (``malformed``).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from engine.preprocess import clean_text
from training.data.conversion import (
    EMOTION_EMOJI,
    ConversionReport,
    ConvertOptions,
    RawExample,
    write_emotion_corpus,
)

PLUTCHIK = {
    1: "anger",
    2: "anticipation",
    3: "disgust",
    4: "fear",
    5: "happiness",  # XED's "joy"
    6: "sadness",
    7: "surprise",
    8: "trust",
    0: "neutral",
    9: "neutral",
}
NO_EKMAN = frozenset({"anticipation", "trust"})
HELD_OUT_LANGUAGES = ("de", "es", "el", "he")
VAL_BYTE = 26  # first byte of the line's hash below this → val (26/256 ≈ 10%)
_LABELS = re.compile(r"^\s*\d+(\s*,\s*\d+)*\s*$")


def xed_languages(data_root: Path | str) -> list[str]:
    base = Path(data_root) / "xed"
    langs = {p.name.split("-")[0] for p in (base / "Projections").glob("*-projections.tsv")}
    langs |= {p.name.split("-")[0] for p in (base / "AnnotatedData").glob("*-annotated.tsv")}
    return sorted(langs)


def split_of(language: str, text: str) -> str:
    if language in HELD_OUT_LANGUAGES:
        return "val"
    digest = hashlib.sha256(f"{language}\t{text}".encode()).digest()
    return "val" if digest[0] < VAL_BYTE else "train"


def _unquote(field: str) -> str | None:
    if field.startswith('"'):
        if len(field) < 2 or not field.endswith('"'):
            return None
        return field[1:-1].replace('""', '"')
    return field


def _label_set(labels: str) -> set[str]:
    return {PLUTCHIK[int(x)] for x in labels.split(",") if x.strip() and int(x) in PLUTCHIK}


def ekman_class(labels: set[str]) -> str | None:
    """Plutchik labels → the one Ekman class, or the reason it has none."""
    if "neutral" in labels:
        return "neutral" if labels == {"neutral"} else None
    kept = labels - NO_EKMAN
    return kept.pop() if len(kept) == 1 else None


def _files(base: Path, language: str) -> list[tuple[Path, str]]:
    """(file, layout) where layout is "text-labels" or "neutral" (text in the second column)."""
    out = []
    annotated = base / "AnnotatedData" / f"{language}-annotated.tsv"
    if annotated.is_file():
        out.append((annotated, "text-labels"))
        neutral = base / "AnnotatedData" / f"neu_{language}.txt"
        if neutral.is_file():
            out.append((neutral, "neutral"))
    projections = base / "Projections" / f"{language}-projections.tsv"
    if projections.is_file():
        out.append((projections, "text-labels"))
    if not out:
        raise FileNotFoundError(f"no XED files for language {language!r} under {base}")
    return out


def xed_examples(
    data_root: Path | str, language: str, skipped: Counter[str] | None = None
) -> Iterator[tuple[str, str, str, str]]:
    """(split, text, emotion, line id) of one language, in file order, each distinct text once."""
    skipped = skipped if skipped is not None else Counter()
    base = Path(data_root) / "xed"
    seen: set[str] = set()
    for path, layout in _files(base, language):
        raw = path.read_text(encoding="utf-8").split("\n")
        for n, line in enumerate(raw, 1):
            line = line.rstrip("\r")
            if not line.strip():
                continue
            parts = line.split("\t")
            while len(parts) > 2 and parts[-1] == "":
                parts.pop()
            if layout == "neutral" and len(parts) >= 2:
                # neu_en: "9<TAB>text"; neu_fi: "id<TAB>text<TAB>…<TAB>file": every line is neutral
                parts = [parts[1], "0"]
            if len(parts) != 2:
                skipped["malformed"] += 1
                continue
            text, labels = parts
            text = _unquote(text)
            if text is None or not _LABELS.match(labels):
                skipped["malformed"] += 1
                continue
            text = clean_text(text)
            if not text:
                skipped["empty_text"] += 1
                continue
            emotion = ekman_class(_label_set(labels))
            if emotion is None:
                names = _label_set(labels)
                multiple = len(names - NO_EKMAN) > 1 or ("neutral" in names and len(names) > 1)
                skipped["multiple_ekman_classes" if multiple else "no_ekman_class"] += 1
                continue
            if text in seen:
                skipped["duplicate_text"] += 1
                continue
            seen.add(text)
            yield split_of(language, text), text, emotion, f"{language}:{path.name}:{n}"


def parse_languages(spec: str, data_root: Path | str) -> list[str]:
    """``en`` / ``de,es`` / ``train`` (every language not held out) / ``held-out`` / ``all``."""
    every = xed_languages(data_root)
    out: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if part == "all":
            out += every
        elif part == "train":
            out += [x for x in every if x not in HELD_OUT_LANGUAGES]
        elif part == "held-out":
            out += [x for x in HELD_OUT_LANGUAGES if x in every]
        elif part:
            if part not in every:
                raise ValueError(f"XED has no language {part!r}; present: {', '.join(every)}")
            out.append(part)
    return list(dict.fromkeys(out))


def convert_xed(data_root: Path | str, out: Path | str, opts: ConvertOptions) -> ConversionReport:
    """The ``xed`` converter (:data:`training.data.convert.CONVERTERS`): ``opts.language`` selects languages."""
    from training.data.format import Turn

    languages = parse_languages(opts.language, data_root)
    skipped: Counter[str] = Counter()
    rows: dict[str, list[RawExample]] = {"train": [], "val": []}
    for lang in languages:
        for split, text, emotion, line_id in xed_examples(data_root, lang, skipped):
            rows[split].append(
                RawExample(context=(Turn(text=text, id=line_id),), emoji=EMOTION_EMOJI[emotion])
            )

    def split(name: str) -> Callable[[], Iterator[RawExample]]:
        return lambda: iter(rows[name])

    splits = {"train": split("train"), "val": split("val")}
    source = {
        "corpus": "XED (Helsinki-NLP, CC BY 4.0), Plutchik → Ekman, anticipation/trust dropped",
        "path": str(Path(data_root) / "xed"),
        "languages": languages,
        "held_out_languages": list(HELD_OUT_LANGUAGES),
    }
    return write_emotion_corpus("xed", out, splits, opts, skipped, source)
