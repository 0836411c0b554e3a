"""Which dialogue tower reads a conversation: English, or another language.

A model directory may carry two dialogue towers (``export/distilled.py --routed``): the English one it was
trained with, and a multilingual one distilled into the same space. Each dialogue goes to one of them by the
language it is written in, detected by py3langid (its naive Bayes model ships in the wheel; numpy only). The
rule leans to English: a dialogue leaves the English tower only when the detector gives English less than
``min_english`` probability, because the English tower is the better reader of English and the detector is
least sure on short, slangy lines (tweets). Chosen on validation texts, ``bench/language_routing.py``: at
0.05, 93% of TweetEval and 98% of MELD dialogues stay English, and at most 2% of any XED language's lines
leave the multilingual tower.

Shared by serving and evaluation: the ranker calls :func:`is_english` on the text it embeds.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from engine.preprocess import TURN_SEPARATOR

DEFAULT_MIN_ENGLISH = 0.05


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
    return english_probability(text) >= min_english
