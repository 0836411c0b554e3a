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

This module is the registry (:data:`CONVERTERS`, :func:`convert`); the converters live in
:mod:`training.data.corpora` (the dialogue and text corpora), :mod:`training.data.picture_sets` (emoji names,
emoji art, clip art) and :mod:`training.data.xed`, and share :mod:`training.data.conversion`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from training.data.conversion import (
    DATASETS,
    EMOTION_EMOJI,
    EMOTIONS,
    ConversionReport,
    ConvertOptions,
    big_pack_emoji,
    normalise_emotion,
    speaker_id,
)
from training.data.corpora import (
    convert_dailydialog,
    convert_goemotions,
    convert_meld,
    convert_tweeteval_emoji,
)
from training.data.picture_sets import (
    clipart_text,
    convert_emoji_art,
    convert_emoji_names,
    convert_openclipart,
)
from training.data.xed import convert_xed

__all__ = [
    "CONVERTERS",
    "DATASETS",
    "EMOTIONS",
    "EMOTION_EMOJI",
    "ConversionReport",
    "ConvertOptions",
    "big_pack_emoji",
    "clipart_text",
    "convert",
    "convert_dailydialog",
    "convert_emoji_art",
    "convert_emoji_names",
    "convert_goemotions",
    "convert_meld",
    "convert_openclipart",
    "convert_tweeteval_emoji",
    "convert_xed",
    "normalise_emotion",
    "speaker_id",
]

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
