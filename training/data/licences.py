"""Which data and art a model was trained on, under which licences, and what that means for an operator.

:func:`training_data_summary` reads each training dataset's ``conversion.json`` (written by the converters:
corpus, art styles and their licences) and adds the corpus licences below. The export writes the result into
the model's ``manifest.json`` (``training_data``), and ``stickerpick models info`` / the README show it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# Corpus → (title, licence as its source states it, what it asks of whoever ships a model trained on it).
CORPUS_LICENCES: dict[str, tuple[str, str, str]] = {
    "tweeteval-emoji": (
        "TweetEval emoji prediction (SemEval-2018 Task 2)",
        "no licence file; the TweetEval README says 'released without any restrictions'; the original task's "
        "terms and Twitter's terms apply to the tweets",
        "research corpus: the tweets are not shipped, only weights learnt from them",
    ),
    "meld": (
        "MELD (Friends dialogues)",
        "GPL-3.0 (the repository's LICENSE); the utterances are Friends transcripts, distributed for research",
        "whether weights trained on GPL-3.0 data are a derived work is unsettled; an operator who needs "
        "certainty trains the permissive variant (no MELD, no DailyDialog)",
    ),
    "dailydialog": (
        "DailyDialog",
        "CC BY-NC-SA 4.0",
        "non-commercial, share-alike: a model trained on it is for non-commercial use",
    ),
    "goemotions": ("GoEmotions (Ekman grouping)", "Apache-2.0", "attribution"),
    "xed": (
        "XED (Helsinki-NLP, movie subtitles from OPUS OpenSubtitles, Plutchik emotions)",
        "CC BY 4.0",
        "attribution (Öhman et al., COLING 2020)",
    ),
    "emoji-names": (
        "emoji names and keywords",
        "emoji-datasource (MIT), emojibase-data (MIT; CLDR annotations under the Unicode licence)",
        "attribution in the notices",
    ),
    "emoji-art": (
        "emoji names and keywords, every emoji",
        "emoji-datasource (MIT), emojibase-data (MIT; CLDR annotations under the Unicode licence)",
        "attribution in the notices",
    ),
    "openclipart": (
        "Open Clip Art Library (Debian openclipart-png)",
        "public domain (CC0)",
        "none",
    ),
}

# What each art style's licence means for an operator who serves a model trained on it.
ART_NOTES: dict[str, str] = {
    "Apache-2.0": "attribution and the licence text in the notices",
    "CC-BY-4.0": "attribution (Twemoji by Twitter/X and contributors, CC BY 4.0)",
    "CC-BY-SA-4.0": "attribution (OpenMoji); share-alike applies to adaptations of the art itself",
    "public domain (CC0)": "none",
}


def _conversion(path: Path) -> dict[str, Any]:
    note = path / "conversion.json"
    if not note.is_file():
        return {}
    try:
        return json.loads(note.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def training_data_summary(train: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``train``: the training config's ``data.train`` entries (``path``, ``weight``…) → {"datasets": [...],
    "art": {style: licence}, "non_commercial": bool, "copyleft": bool}."""
    datasets: list[dict[str, Any]] = []
    art: dict[str, dict[str, str]] = {}
    for spec in train:
        path = Path(str(spec.get("path", "")))
        conv = _conversion(path)
        corpus = str(conv.get("dataset") or path.name)
        # Converters name some datasets by corpus and variant ("meld-accompany"): match the longest prefix.
        key = max(
            (k for k in CORPUS_LICENCES if corpus == k or corpus.startswith(k + "-")), key=len, default=""
        )
        title, licence, meaning = CORPUS_LICENCES.get(key, (corpus, "unknown", "check its source"))
        datasets.append(
            {
                "dataset": path.name,
                "corpus": title,
                "licence": licence,
                "for_operators": meaning,
                "weight": spec.get("weight", 1.0),
            }
        )
        for style, info in (conv.get("art_licences") or {}).items():
            lic = str(info.get("licence", "unknown"))
            art[style] = {
                "title": str(info.get("title", style)),
                "licence": lic,
                "source": str(info.get("source", "")),
                "for_operators": ART_NOTES.get(lic, "check its source"),
            }
    licences = " ".join(d["licence"] for d in datasets)
    return {
        "datasets": datasets,
        "art": art,
        "non_commercial": "NC" in licences,
        "copyleft": "GPL" in licences or "SA" in licences or any("SA" in a["licence"] for a in art.values()),
    }
