"""The project's 7 emotion classes and their 3 polarities (one definition, shared by model, teacher and mining)."""

from __future__ import annotations

from typing import Final

# Fixed order: the emotion head's logits, the teacher's anchors and every emotion label use these indices.
EMOTIONS: Final[tuple[str, ...]] = ("surprise", "happiness", "disgust", "fear", "sadness", "anger", "neutral")
EMOTION_INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(EMOTIONS)}
NUM_EMOTIONS: Final[int] = len(EMOTIONS)
NEUTRAL: Final[int] = EMOTION_INDEX["neutral"]

# Polarity buckets, in this order, for sentiment-aware mining.
POLARITIES: Final[tuple[str, ...]] = ("negative", "neutral", "positive")
EMOTION_POLARITY: Final[dict[str, str]] = {
    "surprise": "positive",
    "happiness": "positive",
    "disgust": "negative",
    "fear": "negative",
    "sadness": "negative",
    "anger": "negative",
    "neutral": "neutral",
}
# EMOTION_TO_POLARITY[i] = polarity index of emotion i.
EMOTION_TO_POLARITY: Final[tuple[int, ...]] = tuple(POLARITIES.index(EMOTION_POLARITY[e]) for e in EMOTIONS)
