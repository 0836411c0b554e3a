"""Which dialogue tower reads a conversation: English, or another language.

A model directory may carry two dialogue towers (``export/distilled.py --routed``): the English one it was
trained with, and a multilingual one distilled into the same space. Each dialogue goes to one of them by the
language it is written in, detected by py3langid (its naive Bayes model ships in the wheel; numpy only). The
rule leans to English: a dialogue leaves the English tower only when the detector gives English less than
``min_english`` probability, because the English tower is the better reader of English and the detector is
least sure on short, slangy lines (tweets); and a dialogue of fewer than ``MIN_LETTERS`` letters, all of them
ASCII ("omg", "tear", "hehe"), stays English whatever the detector says, since a few letters say little about
a language. Chosen on validation (``bench/language_routing.py``, ``scripts/eval_suite.py``): at 0.02, 98% of
TweetEval and MELD dialogues and 93% of single emoji keywords stay English, and 90-100% of every XED
language's subtitle lines reach the multilingual tower (most above 92%); at 0.05, 7% of tweets left the
English tower and cost TweetEval 1.3 points of macro-F1, and without the short-text rule 39% of the keywords
did, halving R@1 on the emoji-names set.

Shared by serving and evaluation: the ranker calls :func:`is_english` on the text it embeds.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from engine.preprocess import TURN_SEPARATOR

DEFAULT_MIN_ENGLISH = 0.02
MIN_LETTERS = 7


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def english_probability(text: str) -> float:
    """P(English) of a dialogue text (turn separators removed); 1.0 for a text with no letters."""
    plain = text.replace(TURN_SEPARATOR, " ").strip()
    if not any(ch.isalpha() for ch in plain):
        return 1.0
    return float(dict(_identifier().rank(plain)).get("en", 0.0))


def detect(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of the most likely language; ("und", 0.0) for a text with no letters."""
    plain = text.replace(TURN_SEPARATOR, " ").strip()
    if not any(ch.isalpha() for ch in plain):
        return "und", 0.0
    lang, p = _identifier().classify(plain)  # pure: safe from several threads
    return str(lang), float(p)


def is_english(text: str, min_english: float = DEFAULT_MIN_ENGLISH) -> bool:
    letters = [ch for ch in text.replace(TURN_SEPARATOR, " ") if ch.isalpha()]
    if len(letters) < MIN_LETTERS and all(ch.isascii() for ch in letters):
        return True
    return english_probability(text) >= min_english
