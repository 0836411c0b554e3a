"""Emoji → emotion class: the labels the emotion teacher is fitted on.

Labels (``label_emoji_emotion``): an emoji sticker's emotion class is derived, reproducibly and offline, from
1. an explicit table for the common face emoji (``FACE_EMOJI_EMOTION``; checked by hand), else
2. the emoji's CLDR English name and GitHub-style aliases (the pinned ``emoji`` package, via
   ``engine.preprocess.emoji_names``) matched against a small word list for GoEmotions' 27 emotions
   (``KEYWORD_GOEMOTION``), each GoEmotions emotion mapped to the 7 classes by GoEmotions' own Ekman mapping
   (``GOEMOTIONS_EKMAN``, copied below); the class with the most matches wins, ties by ``_TIE_ORDER``, else
3. neutral.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

import numpy as np

from engine.preprocess import emoji_names
from training.emotions import EMOTION_INDEX, EMOTIONS, NEUTRAL, NUM_EMOTIONS

# GoEmotions → Ekman, copied from google-research/google-research, goemotions/data/ekman_mapping.json
# (Apache-2.0; Demszky et al., "GoEmotions: A Dataset of Fine-Grained Emotions", ACL 2020). "neutral" is not in
# the file: it maps to our neutral class. Ekman's "joy" is our "happiness".
GOEMOTIONS_EKMAN: Final[dict[str, tuple[str, ...]]] = {
    "anger": ("anger", "annoyance", "disapproval"),
    "disgust": ("disgust",),
    "fear": ("fear", "nervousness"),
    "joy": (
        "joy", "amusement", "approval", "excitement", "gratitude", "love",
        "optimism", "relief", "pride", "admiration", "desire", "caring",
    ),
    "sadness": ("sadness", "disappointment", "embarrassment", "grief", "remorse"),
    "surprise": ("surprise", "realization", "confusion", "curiosity"),
}  # fmt: skip
_EKMAN_TO_CLASS: Final[dict[str, str]] = {"joy": "happiness"}
GOEMOTION_TO_CLASS: Final[dict[str, int]] = {
    goemotion: EMOTION_INDEX[_EKMAN_TO_CLASS.get(ekman, ekman)]
    for ekman, goemotions in GOEMOTIONS_EKMAN.items()
    for goemotion in goemotions
} | {"neutral": NEUTRAL}

# Words and phrases of CLDR emoji names / aliases → a GoEmotions emotion. Phrases are matched before single
# words, and a matched phrase consumes its words ("tears of joy" is joy, not tears → sadness).
KEYWORD_GOEMOTION: Final[dict[str, str]] = {
    # phrases
    "tears of joy": "amusement",
    "broken heart": "sadness",
    "thumbs up": "approval",
    "thumbs down": "disapproval",
    "ok hand": "approval",
    "crossed fingers": "optimism",
    "fingers crossed": "optimism",
    "folded hands": "gratitude",
    "raising hands": "joy",
    "middle finger": "anger",
    "rolling eyes": "annoyance",
    "roll eyes": "annoyance",
    "raised eyebrow": "confusion",
    "open mouth": "surprise",
    "hand over mouth": "amusement",
    "heart eyes": "love",
    "heart-eyes": "love",
    "steam from nose": "anger",
    "symbols on mouth": "anger",
    "exploding head": "surprise",
    "light bulb": "realization",
    "cross mark": "disapproval",
    "savoring food": "desire",
    "party popper": "excitement",
    "hundred points": "approval",
    "gesturing no": "disapproval",
    "gesturing ok": "approval",
    "flexed biceps": "pride",
    # GoEmotions' own names and their word forms
    "admiration": "admiration", "admire": "admiration",
    "amusement": "amusement", "amused": "amusement", "laugh": "amusement", "laughing": "amusement",
    "rofl": "amusement", "zany": "amusement", "tongue": "amusement", "wink": "amusement", "winking": "amusement",
    "anger": "anger", "angry": "anger", "rage": "anger", "enraged": "anger", "pout": "anger", "pouting": "anger",
    "cursing": "anger", "annoyance": "annoyance", "annoyed": "annoyance", "unamused": "annoyance",
    "approval": "approval", "approve": "approval", "thumbsup": "approval", "+1": "approval",
    "clap": "admiration", "clapping": "admiration", "handshake": "approval", "sparkles": "excitement",
    "caring": "caring", "hug": "caring", "hugs": "caring", "hugging": "caring",
    "confusion": "confusion", "confused": "confusion", "puzzled": "confusion",
    "curiosity": "curiosity", "curious": "curiosity", "monocle": "curiosity",
    "desire": "desire", "drooling": "desire", "yum": "desire",
    "disappointment": "disappointment", "disappointed": "disappointment",
    "disapproval": "disapproval", "thumbsdown": "disapproval", "-1": "disapproval", "prohibited": "disapproval",
    "disgust": "disgust", "disgusted": "disgust", "nauseated": "disgust", "vomiting": "disgust",
    "vomit": "disgust", "puke": "disgust",
    "embarrassment": "embarrassment", "embarrassed": "embarrassment",
    "excitement": "excitement", "excited": "excitement", "partying": "excitement", "tada": "excitement",
    "star-struck": "excitement", "fireworks": "excitement", "confetti": "excitement",
    "fear": "fear", "fearful": "fear", "scream": "fear", "screaming": "fear", "scared": "fear",
    "gratitude": "gratitude", "grateful": "gratitude", "pray": "gratitude", "thanks": "gratitude",
    "grief": "grief", "sob": "grief", "loudly": "grief",
    "joy": "joy", "joyful": "joy", "happy": "joy", "grin": "joy", "grinning": "joy", "beaming": "joy",
    "smile": "joy", "smiling": "joy", "smiley": "joy", "satisfied": "joy", "celebration": "joy",
    "love": "love", "heart": "love", "hearts": "love", "kiss": "love", "kissing": "love", "cupid": "love",
    "nervousness": "nervousness", "nervous": "nervousness", "anxious": "nervousness", "worried": "nervousness",
    "grimacing": "nervousness", "facepalming": "annoyance", "victory": "approval",
    "optimism": "optimism", "optimistic": "optimism", "rainbow": "optimism",
    "pride": "pride", "proud": "pride", "muscle": "pride", "trophy": "pride", "medal": "pride",
    "realization": "realization",
    "relief": "relief", "relieved": "relief",
    "remorse": "remorse", "sorry": "remorse", "pleading": "remorse",
    "sadness": "sadness", "sad": "sadness", "cry": "sadness", "crying": "sadness", "tear": "sadness",
    "tears": "sadness", "frowning": "sadness", "frown": "sadness", "pensive": "sadness", "wilted": "sadness",
    "weary": "sadness", "tired": "sadness",
    "surprise": "surprise", "surprised": "surprise", "astonished": "surprise", "hushed": "surprise",
    "shocked": "surprise", "flushed": "surprise",
}  # fmt: skip

# The common face emoji, by hand (the keyword rule gets some of them wrong: 😊's alias is "blush", 🥲 has both
# "smiling" and "tear"…). Keys have no variation selector and no skin tone.
_FACE_TABLE_BY_CLASS: Final[dict[str, str]] = {
    "happiness": "😀😃😄😁😆😅🤣😂🙂😉😊😇🥰😍🤩😘😗☺😚😙🥲😋😛😜🤪😝🤑🤗🤭😏😌🤤🥳😎🤓🤠😺😸😹😻😼😽😈",
    "surprise": "😮😯😲😳🤯😵🫢🙀😦🧐🤨",
    "fear": "😨😰😱😬😟🫣😧🫨",
    "sadness": "😞😔😕🫤🙁☹😣😖😫😩🥺🥹😢😭😿😓😥",
    "anger": "😠😡🤬👿😤😾",
    "disgust": "🤢🤮😒🙄",
    "neutral": "😐😑😶🫥🤐🤔🫡🤫🙃🫠😪😴🥱😷🤒🤕🤧🥵🥶🥴🤥🥸",
}
FACE_EMOJI_EMOTION: Final[dict[str, int]] = {
    ch: EMOTION_INDEX[cls] for cls, chars in _FACE_TABLE_BY_CLASS.items() for ch in chars
}
# When keyword votes tie: the more specific (rarer) classes first.
_TIE_ORDER: Final[tuple[str, ...]] = (
    "disgust",
    "fear",
    "anger",
    "sadness",
    "surprise",
    "happiness",
    "neutral",
)

_SKIN_TONES = re.compile("[\U0001f3fb-\U0001f3ff]")
_PHRASES = sorted((k for k in KEYWORD_GOEMOTION if " " in k), key=len, reverse=True)


def normalise_emoji(emoji_char: str) -> str:
    """Drop variation selectors and skin-tone modifiers (a sticker's emoji is often sent with either)."""
    return _SKIN_TONES.sub("", emoji_char.replace("\ufe0f", "").replace("\ufe0e", ""))


def _keyword_emotions(text: str) -> list[str]:
    text = " " + text.lower().replace("_", " ").replace(":", " ") + " "
    found: list[str] = []
    for phrase in _PHRASES:
        pattern = f" {phrase} "
        while pattern in text:
            found.append(KEYWORD_GOEMOTION[phrase])
            text = text.replace(pattern, " | ", 1)
    for word in text.split():
        if word in KEYWORD_GOEMOTION:
            found.append(KEYWORD_GOEMOTION[word])
        elif "-" in word:
            found.extend(KEYWORD_GOEMOTION[w] for w in word.split("-") if w in KEYWORD_GOEMOTION)
    return found


def explain_emoji_emotion(emoji_char: str | None) -> tuple[int, str]:
    """(class index, source) with source one of "table", "keywords: <goemotions…>", "default"."""
    if not emoji_char:
        return NEUTRAL, "default"
    key = normalise_emoji(emoji_char)
    if key in FACE_EMOJI_EMOTION:
        return FACE_EMOJI_EMOTION[key], "table"
    names = emoji_names(emoji_char) or emoji_names(key)
    goemotions = [g for name in names for g in _keyword_emotions(name)]
    if not goemotions:
        return NEUTRAL, "default"
    votes = np.zeros(NUM_EMOTIONS)
    for g in goemotions:
        votes[GOEMOTION_TO_CLASS[g]] += 1
    best = votes.max()
    winner = next(EMOTION_INDEX[c] for c in _TIE_ORDER if votes[EMOTION_INDEX[c]] == best)
    return winner, "keywords: " + ",".join(dict.fromkeys(goemotions))


def label_emoji_emotion(emoji_char: str | None) -> int:
    """The emotion class (index into ``EMOTIONS``) of an emoji sticker; unknown → neutral."""
    return explain_emoji_emotion(emoji_char)[0]


def emoji_emotion_name(emoji_char: str | None) -> str:
    return EMOTIONS[label_emoji_emotion(emoji_char)]


def is_emoji_char(s: str) -> bool:
    return bool(s) and all(unicodedata.category(c) in ("So", "Sk", "Mn", "Cf") or ord(c) > 0xFFFF for c in s)
