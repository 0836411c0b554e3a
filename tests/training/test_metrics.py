from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.metrics import (
    NO_ALT,
    confusion_matrix_png,
    gold_and_predicted,
    positive_ranks,
    ranking_metrics,
    write_predictions_jsonl,
)

# Classes X, Y, Z: stickers a, c → X; b, f → Y; d, e → Z.
ALT = {"a": "X", "b": "Y", "c": "X", "d": "Z", "e": "Z", "f": "Y"}
# (ranking best first, positive): ranks 1, 2, 2, 5, 1; (gold, predicted): XX, YX, ZZ, XY, ZZ.
CASES = [
    (["a", "b"], "a"),
    (["c", "b", "a"], "b"),
    (["d", "e", "f", "a", "b", "c"], "e"),
    (["b", "f", "d", "e", "a", "c"], "a"),
    (["e", "a"], "e"),
]


def _run(cases: list[tuple[list[str], str]], alt: dict[str, str | None] = ALT) -> dict[str, float]:  # type: ignore[assignment]
    return ranking_metrics([r for r, _ in cases], [p for _, p in cases], alt)


def test_hand_computed_recall_mrr_f1() -> None:
    m = _run(CASES)
    assert positive_ranks([r for r, _ in CASES], [p for _, p in CASES]) == [1, 2, 2, 5, 1]
    assert m["R@1"] == pytest.approx(40.0)
    assert m["R@2"] == pytest.approx(80.0)
    assert m["R@5"] == pytest.approx(100.0)
    assert m["MRR"] == pytest.approx(100 * (1 + 1 / 2 + 1 / 2 + 1 / 5 + 1) / 5)  # 64.0
    # X: tp 1, fp 1, fn 1 → F1 .5; Y: tp 0 → 0; Z: tp 2 → 1. Supports X 2, Y 1, Z 2.
    assert m["macro_F1"] == pytest.approx(100 * (0.5 + 0 + 1) / 3)
    assert m["weighted_F1"] == pytest.approx(100 * (2 * 0.5 + 0 + 2 * 1) / 5)  # 60.0
    assert m["n"] == 5 and m["n_f1"] == 5


def test_perfect_and_worst_rankers() -> None:
    perfect = [(["a", "b", "c"], "a"), (["b", "a"], "b"), (["d", "a"], "d")]
    m = _run(perfect)
    assert m["R@1"] == m["MRR"] == m["macro_F1"] == m["weighted_F1"] == pytest.approx(100.0)
    worst = [(["b", "d", "a"], "a"), (["a", "b"], "b")]
    m = _run(worst)
    assert (m["R@1"], m["R@2"], m["R@5"]) == (0.0, 50.0, 100.0)
    assert m["MRR"] == pytest.approx(100 * (1 / 3 + 1 / 2) / 2)
    assert m["macro_F1"] == 0.0


def test_f1_classes_come_from_gold_and_vs16_is_ignored() -> None:
    alt: dict[str, str | None] = {"h1": "❤️", "h2": "❤", "j": "😂", "w": "🌵", "n": None, "m": None}
    cases = [
        (["h2", "h1"], "h1"),  # another sticker of the class on top: a miss for R@1, right for F1 (❤ = ❤️)
        (["w", "j"], "j"),  # predicted 🌵, a class never gold: wrong, and 🌵 is not averaged in
        (["n", "j"], "j"),  # the top sticker has no alt: wrong
        (["m", "j"], "m"),  # the positive has no alt: counted for recall, left out of the F1s
    ]
    m = _run(cases, alt)
    assert m["n"] == 4 and m["n_f1"] == 3
    assert m["R@1"] == pytest.approx(25.0)  # only the last sample
    # ❤: tp 1 → F1 1; 😂: tp 0 → 0. Macro over the gold classes {❤, 😂} only.
    assert m["macro_F1"] == pytest.approx(50.0)
    assert m["weighted_F1"] == pytest.approx(100 * (1 * 1 + 2 * 0) / 3)
    gold, pred = gold_and_predicted([r for r, _ in cases], [p for _, p in cases], alt)
    assert gold == ["❤", "😂", "😂"] and pred == ["❤", "🌵", NO_ALT]


def test_emotion_f1_counts_another_sticker_of_the_same_emotion() -> None:
    alt: dict[str, str | None] = {
        "cry": "😢",
        "sob": "😭",
        "grin": "😄",
        "pizza": "🍕",
        "mad": "😠",
        "n": None,
    }
    cases = [
        (["sob", "cry"], "cry"),  # 😭 for 😢: a miss for the emoji F1, sadness either way
        (["grin", "sob"], "sob"),  # happiness for sadness: wrong in both
        (["grin", "cry"], "grin"),  # right in both
        (["pizza", "mad"], "mad"),  # an object (neutral) for anger: wrong in both
        (["n", "cry"], "cry"),  # no alt on top: wrong in both
    ]
    m = _run(cases, alt)
    # emoji classes 😢 (gold 2: tp 0), 😭 (gold 1: tp 0, fp 1), 😄 (tp 1, fp 1), 😠 (tp 0) → 1/(1+.5+.5) = 2/3
    assert m["macro_F1"] == pytest.approx(100 * (0 + 0 + 2 / 3 + 0) / 4)
    # emotion classes: sadness gold 3, tp 1 (😭 for 😢), fp 0 → F1 .5; happiness tp 1, fp 1 → 2/3; anger 0
    assert m["emotion_macro_F1"] == pytest.approx(100 * (0.5 + 2 / 3 + 0) / 3)
    assert m["emotion_weighted_F1"] == pytest.approx(100 * (3 * 0.5 + 1 * 2 / 3 + 0) / 5)
    assert _run(CASES[:1], {"a": "😢", "b": "😭"})["emotion_macro_F1"] == pytest.approx(100.0)


def test_errors_and_empty() -> None:
    with pytest.raises(ValueError, match="not among"):
        ranking_metrics([["a", "b"]], ["c"], ALT)
    with pytest.raises(ValueError, match="repeats"):
        ranking_metrics([["a", "a"]], ["a"], ALT)
    with pytest.raises(ValueError, match="positives"):
        ranking_metrics([["a"]], [], ALT)
    assert ranking_metrics([], [], ALT)["n"] == 0


def test_predictions_jsonl_keeps_input_order(tmp_path: Path) -> None:
    path = write_predictions_jsonl(tmp_path / "out" / "pred.jsonl", [["b", "a"], ["c"], [1, "x"]])  # type: ignore[list-item]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == [
        {"ranking": ["b", "a"]},
        {"ranking": ["c"]},
        {"ranking": ["1", "x"]},
    ]
    assert sorted(p.name for p in path.parent.iterdir()) == ["pred.jsonl"]


def test_confusion_matrix_png(tmp_path: Path) -> None:
    gold = ["😂", "😂", "😍", "❤️", "😍"]
    pred = ["😂", "😍", "😍", "😂", NO_ALT]
    path = confusion_matrix_png(gold, pred, ["😂", "😍", "❤️"], tmp_path / "cm.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
