"""Language routing: which dialogue tower reads a conversation."""

from __future__ import annotations

import pytest

from engine.language import detect, english_probability, is_english
from engine.preprocess import dialogue_to_text


@pytest.mark.parametrize(
    "text",
    [
        "yes please, I love you, you're the best",
        "alice: I finally passed my driving test!!",
        "lol that's hilarious, can't stop laughing",
    ],
)
def test_english_stays_with_the_english_tower(text: str) -> None:
    assert is_english(text)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Ich bin so traurig, mein Hund ist gestorben", "de"),
        ("мне так грустно, моя собака умерла", "ru"),
        ("estoy muy triste, mi perro murió", "es"),
        ("من خیلی ناراحتم، سگم مرد", "fa"),
        ("estou tão triste, meu cachorro morreu", "pt"),
    ],
)
def test_other_languages_leave_it(text: str, lang: str) -> None:
    assert not is_english(text)
    assert detect(text)[0] == lang


def test_turn_separators_are_not_read_as_words() -> None:
    turns = ["Ich bin so traurig", "mein Hund ist gestorben", "das tut mir leid"]
    joined = dialogue_to_text(turns)
    assert english_probability(joined) == english_probability(" ".join(turns))


def test_a_text_without_letters_reads_as_english() -> None:
    assert english_probability("😂😂 !!! 123") == 1.0
    assert detect("😂😂")[0] == "und"


def test_the_threshold_decides() -> None:
    text = "ok merci beaucoup"
    p = english_probability(text)
    assert 0.0 < p < 1.0
    assert is_english(text, min_english=p) and not is_english(text, min_english=min(1.0, p + 1e-6))


@pytest.mark.parametrize("text", ["omg", "tear", "hehe", "lol ok"])
def test_a_few_ascii_letters_stay_english(text: str) -> None:
    assert is_english(text)


def test_a_few_letters_of_another_script_do_not() -> None:
    assert not is_english("привет")


def test_the_shipped_model_loads_its_other_tower_only_for_other_languages() -> None:
    from pathlib import Path

    from engine.ranking import PBRRanker

    model = Path(__file__).resolve().parents[2] / "models" / "default"
    if not (model / "text_multilingual.onnx").is_file():
        pytest.skip("models/default has no multilingual tower")
    ranker = PBRRanker(model)
    english = ranker.embed_dialogues(["alice: I finally passed my driving test!!"])
    assert ranker.has_multilingual and ranker._multilingual is None  # English never loaded it
    other = ranker.embed_dialogues(["lena: Ich bin so traurig, mein Hund ist gestorben"])
    assert ranker._multilingual is not None
    assert english.shape == other.shape and abs(float((other**2).sum()) - 1) < 1e-4


def test_an_operator_can_keep_every_dialogue_on_the_english_tower(monkeypatch) -> None:
    from pathlib import Path

    from engine.ranking import load_ranker
    from engine.settings import Settings

    model = Path(__file__).resolve().parents[2] / "models" / "default"
    if not (model / "text_multilingual.onnx").is_file():
        pytest.skip("models/default has no multilingual tower")
    monkeypatch.setenv("STICKERPICK_MULTILINGUAL", "false")
    settings = Settings(_env_file=None)
    ranker = load_ranker("auto", model, multilingual=settings.multilingual)
    german = "lena: Ich bin so traurig, mein Hund ist gestorben"
    assert ranker.dialogue_tower(german) == "english"  # type: ignore[attr-defined]
    ranker.embed_dialogues([german])
    assert ranker._multilingual is None  # type: ignore[attr-defined]
    assert load_ranker("auto", model).dialogue_tower(german) == "multilingual"  # type: ignore[attr-defined]
