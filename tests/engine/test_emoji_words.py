"""Emoji in a dialogue: a vocabulary without them (the English tower's WordPiece) reads their names; one that has
them (the multilingual tower's) reads them as they are. Training and serving share the tokenizer, so both see
the same."""

from __future__ import annotations

from pathlib import Path

import emoji as emoji_pkg
import pytest

from engine.preprocess import TextTokenizer, emoji_as_words

MODEL = Path(__file__).resolve().parents[2] / "models" / "default"


def test_each_emoji_becomes_its_english_name():
    assert emoji_as_words("happy birthday!! 🎂") == "happy birthday!! birthday cake"
    assert emoji_as_words("lol 😂😂") == "lol face with tears of joy face with tears of joy"
    # a skin tone, a variation selector and a flag are part of the emoji they belong to
    assert emoji_as_words("nice 👍🏻 I ❤️ 🇨🇦") == "nice thumbs up light skin tone I red heart Canada"


def test_text_without_emoji_is_left_as_it_is():
    for text in ("plain ascii, [SEP] kept", "très bien, à demain “ok” — ß", "Привет, как дела?", "你好"):
        assert emoji_as_words(text) == text


def test_every_emoji_is_found():
    """The quick test in front of the emoji package's scan lets no emoji through unnamed."""
    missed = [e for e in emoji_pkg.EMOJI_DATA if emoji_as_words(f"a {e} b") == f"a {e} b"]
    assert not missed, missed[:10]


@pytest.fixture(scope="module")
def english() -> TextTokenizer:
    return TextTokenizer(MODEL / "tokenizer.json", max_tokens=64)


def test_the_english_tower_reads_names_not_unknown_tokens(english):
    unk = english._tok.token_to_id("[UNK]")
    assert english.emoji_words and english.preparation
    ids = english.encode(["happy birthday 🎂"]).input_ids[0].tolist()
    assert unk not in ids
    assert ids == english.encode(["happy birthday birthday cake"]).input_ids[0].tolist()
    # the history window counts what the tower reads
    assert english.count_tokens("🎂") == english.count_tokens("birthday cake")


def test_a_vocabulary_with_emoji_reads_them_as_they_are():
    path = MODEL / "tokenizer_multilingual.json"
    if not path.is_file():
        pytest.skip("models/default has no multilingual tower")
    tok = TextTokenizer(path, max_tokens=64)
    assert not tok.emoji_words and tok.preparation == ""
    assert tok.prepare("alles Gute 🎂") == "alles Gute 🎂"
