from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.training.test_convert import node_modules  # noqa: F401  (the fake emoji artwork fixture)
from training.data.convert import DATASETS, EMOTION_EMOJI, ConvertOptions, convert
from training.data.format import load_split
from training.data.xed import HELD_OUT_LANGUAGES, ekman_class, parse_languages, split_of, xed_examples


def _xed(root: Path) -> Path:
    base = root / "xed"
    (base / "AnnotatedData").mkdir(parents=True)
    (base / "Projections").mkdir()
    # anger; joy+anticipation → joy; anticipation+trust → no class; anger+fear → several; a quoted line.
    (base / "AnnotatedData" / "en-annotated.tsv").write_text(
        "Get out!\t1\r\nWe won!\t5, 2\r\nTomorrow then.\t2, 8\r\nNo, no!\t1, 4\r\n"
        '"He said ""run"" and ran."\t4\r\nGet out!\t6\r\n',
        encoding="utf-8",
    )
    (base / "AnnotatedData" / "neu_en.txt").write_text("9\tTwo pair.\n9\tOk\t\t\t\n", encoding="utf-8")
    (base / "Projections" / "en-projections.tsv").write_text("So sad.\t6\n", encoding="utf-8")
    # German: a broken quote and an alignment-metadata row are skipped.
    (base / "Projections" / "de-projections.tsv").write_text(
        'Ich bin so traurig.\t6\r\n"Heul dich aus.\r\nen/1990/1.xml.gz\tde/1990/2.xml.gz\t1\t2\tNo.\tNein.\r\n'
        "Was?\t7\r\n",
        encoding="utf-8",
    )
    (base / "Projections" / "fr-projections.tsv").write_text("Dégoûtant.\t3\n", encoding="utf-8")
    return root


def test_plutchik_to_ekman() -> None:
    assert ekman_class({"happiness", "anticipation"}) == "happiness"
    assert ekman_class({"trust"}) is None and ekman_class({"anger", "fear"}) is None
    assert ekman_class({"neutral"}) == "neutral"


def test_examples_mapping_and_noise(tmp_path: Path) -> None:
    data = _xed(tmp_path)
    skipped: Counter[str] = Counter()
    rows = list(xed_examples(data, "en", skipped))
    assert [(t, e) for _, t, e, _ in rows] == [
        ("Get out!", "anger"),
        ("We won!", "happiness"),
        ('He said "run" and ran.', "fear"),
        ("Two pair.", "neutral"),
        ("Ok", "neutral"),
        ("So sad.", "sadness"),
    ]
    assert skipped == {"no_ekman_class": 1, "multiple_ekman_classes": 1, "duplicate_text": 1}
    skipped.clear()
    de = list(xed_examples(data, "de", skipped))
    assert [(s, t, e) for s, t, e, _ in de] == [
        ("val", "Ich bin so traurig.", "sadness"),
        ("val", "Was?", "surprise"),
    ]
    assert skipped == {"malformed": 2}


def test_splits_are_deterministic_and_held_out_languages_are_val_only(tmp_path: Path) -> None:
    assert "de" in HELD_OUT_LANGUAGES and "en" not in HELD_OUT_LANGUAGES
    texts = [f"line {i}" for i in range(400)]
    splits = [split_of("en", t) for t in texts]
    assert splits == [split_of("en", t) for t in texts]
    assert 20 < splits.count("val") < 70  # ~10%
    assert {split_of("es", t) for t in texts} == {"val"}
    data = _xed(tmp_path)
    assert parse_languages("train", data) == ["en", "fr"]
    assert parse_languages("held-out", data) == ["de"]
    with pytest.raises(ValueError, match="no language"):
        parse_languages("xx", data)


def test_convert_xed(tmp_path: Path, node_modules: Path) -> None:  # noqa: F811
    assert "xed" in DATASETS
    data = _xed(tmp_path / "data")
    opts = ConvertOptions(node_modules=node_modules, progress=False, language="en,de")
    report = convert("xed", data, tmp_path / "xed", opts)
    assert report.counts["train"] + report.counts["val"] == 8
    val = load_split(tmp_path / "xed", "val")
    de = [s for s in val if s.context[0].id.startswith("de:")]
    assert [(s.context[0].text, s.current.alt) for s in de] == [
        ("Ich bin so traurig.", EMOTION_EMOJI["sadness"]),
        ("Was?", EMOTION_EMOJI["surprise"]),
    ]
    assert all(len(s.candidates) == 7 and len(s.context) == 1 for s in val)
    train = load_split(tmp_path / "xed", "train")
    assert not [s for s in train if s.context[0].id.startswith("de:")]
