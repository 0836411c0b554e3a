"""The evaluation metrics of ``docs/FORMAT.md``, over ranked candidate lists.

Per sample the caller gives the candidate ids ranked best first, the positive id, and an id → emoji ("alt")
mapping. :func:`ranking_metrics` returns, **all as percentages (0-100)**, MRR included:

- ``R@1``, ``R@2``, ``R@5``: share of samples whose positive is in the top k (Rn@k, n = the candidates; with
  fewer than k candidates the positive is always in the top k);
- ``MRR``: mean of 1 / rank of the positive (equal to MAP with one positive);
- ``macro_F1``, ``weighted_F1``: the positive's alt is the class, the top-1 candidate's alt the prediction;
  scikit-learn's ``f1_score`` over the classes seen in gold (``zero_division=0``). Alts are compared without
  U+FE0F ("❤" and "❤️" are one class). Samples whose positive has no alt are left out of the F1s only.

- ``emotion_macro_F1``, ``emotion_weighted_F1``: the same with each alt replaced by its emotion class
  (``training/emotion_labels.py``: the 7 classes, an emoji that shows none is neutral). Over a whole pack this
  is what a user sees: a sad message that gets 😭 first where the gold is 😢 is right here and wrong above.

and the counts ``n`` (samples) and ``n_f1`` (samples in the F1s), which are plain numbers, not percentages.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from engine.fsutil import atomic_open

RECALL_AT = (1, 2, 5, 10)
NO_ALT = "<no alt>"  # the prediction of a top candidate that has no emoji: always wrong


def normalise_alt(alt: str | None) -> str | None:
    """The class an alt stands for: without U+FE0F and blanks; None where there is none."""
    if alt is None:
        return None
    alt = alt.replace("\ufe0f", "").strip()
    return alt or None


_norm_alt = normalise_alt  # the name training/evaluate.py imports


def positive_ranks(rankings: Sequence[Sequence[str]], positives: Sequence[str]) -> list[int]:
    """The 1-based rank of each positive in its ranking; an error if a positive is missing."""
    if len(rankings) != len(positives):
        raise ValueError(f"{len(rankings)} rankings but {len(positives)} positives")
    ranks: list[int] = []
    for i, (ranking, pos) in enumerate(zip(rankings, positives, strict=True)):
        ids = [str(c) for c in ranking]
        if len(set(ids)) != len(ids):
            raise ValueError(f"sample {i}: the ranking repeats a candidate")
        try:
            ranks.append(ids.index(str(pos)) + 1)
        except ValueError:
            raise ValueError(f"sample {i}: positive {pos!r} is not among its {len(ids)} candidates") from None
    return ranks


def gold_and_predicted(
    rankings: Sequence[Sequence[str]], positives: Sequence[str], alt: Mapping[str, str | None]
) -> tuple[list[str], list[str]]:
    """(gold class, predicted class) per sample whose positive has an alt: the alt of the positive and of
    the top-1 candidate (``NO_ALT`` where that has none)."""
    gold: list[str] = []
    pred: list[str] = []
    for ranking, pos in zip(rankings, positives, strict=True):
        g = _norm_alt(alt.get(str(pos)))
        if g is None:
            continue
        gold.append(g)
        top = str(ranking[0]) if len(ranking) else ""
        pred.append(_norm_alt(alt.get(top)) or NO_ALT)
    return gold, pred


def ranking_metrics(
    rankings: Sequence[Sequence[str]], positives: Sequence[str], alt: Mapping[str, str | None]
) -> dict[str, float]:
    """R@1, R@2, R@5, MRR, the F1s (percentages) and n, n_f1 (counts); see the module doc."""
    ranks = np.asarray(positive_ranks(rankings, positives), dtype=np.float64)
    out: dict[str, float] = {}
    if ranks.size == 0:
        out.update({f"R@{k}": 0.0 for k in RECALL_AT})
        out.update(MRR=0.0, n=0, n_f1=0, **_f1s([], []), **_f1s([], [], prefix="emotion_"))
        return out
    for k in RECALL_AT:
        out[f"R@{k}"] = float(np.mean(ranks <= k) * 100.0)
    out["MRR"] = float(np.mean(1.0 / ranks) * 100.0)
    gold, pred = gold_and_predicted(rankings, positives, alt)
    out.update(_f1s(gold, pred))
    out.update(_f1s(emotion_classes(gold), emotion_classes(pred), prefix="emotion_"))
    out["n"] = int(ranks.size)
    out["n_f1"] = len(gold)
    # Coverage: how many distinct stickers ever come first, against how many gold classes there are (a
    # model that always answers the same few stickers ranks a big pack badly however good its R@1 on them).
    out["top1_distinct"] = len({str(r[0]) for r in rankings if len(r)})
    out["gold_classes"] = len(set(gold)) if gold else len({str(p) for p in positives})
    return out


def _f1s(gold: list[str], pred: list[str], prefix: str = "") -> dict[str, float]:
    """Macro and weighted F1 (percentages) of ``pred`` against ``gold``, over the classes seen in gold."""
    from sklearn.metrics import f1_score

    if not gold:
        return {f"{prefix}macro_F1": 0.0, f"{prefix}weighted_F1": 0.0}
    labels = sorted(set(gold))
    return {
        f"{prefix}{avg}_F1": float(f1_score(gold, pred, labels=labels, average=avg, zero_division=0) * 100.0)
        for avg in ("macro", "weighted")
    }


def emotion_classes(alts: Sequence[str]) -> list[str]:
    """Each (normalised) alt's emotion class name; ``NO_ALT`` stays itself (always wrong)."""
    from training.emotion_labels import emoji_emotion_name

    return [a if a == NO_ALT else emoji_emotion_name(a) for a in alts]


def _display_label(label: str) -> str:
    """Emoji rarely have a glyph in matplotlib's fonts: show their English name instead."""
    from engine.preprocess import emoji_names

    names = emoji_names(label) if label != NO_ALT else []
    return f"{names[0]}" if names else label


def confusion_matrix_png(
    gold: Sequence[str],
    pred: Sequence[str],
    labels: Sequence[str],
    path: Path | str,
    *,
    title: str = "",
    normalise: bool = True,
) -> Path:
    """Save a confusion matrix (rows gold, columns predicted) as a PNG. With ``normalise`` the colours are
    row shares (per-class recall) and the cells print counts; emoji labels are shown by name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = list(labels)
    cm = confusion_matrix(list(gold), list(pred), labels=labels) if labels else np.zeros((0, 0), dtype=int)
    shares = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalise else cm
    names = [_display_label(lab) for lab in labels]
    side = max(4.0, 0.45 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    try:
        im = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1 if normalise else None)
        fig.colorbar(
            im, ax=ax, fraction=0.046, pad=0.04, label="share of gold class" if normalise else "count"
        )
        ax.set_xticks(range(len(labels)), names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), names, fontsize=8)
        ax.set_xlabel("predicted (top-1 candidate)")
        ax.set_ylabel("gold (positive)")
        if title:
            ax.set_title(title)
        if len(labels) <= 30:
            for i in range(len(labels)):
                for j in range(len(labels)):
                    if cm[i, j]:
                        dark = shares[i, j] > (0.5 if normalise else cm.max() / 2)
                        ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                                color="white" if dark else "black")  # fmt: skip
        fig.tight_layout()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Glyph .* missing")
            fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path


def write_predictions_jsonl(path: Path | str, rankings: Sequence[Sequence[str]]) -> Path:
    """One line per sample, in input order: ``{"ranking": [ids best first]}``, written atomically."""
    path = Path(path)
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
        os.fchmod(f.fileno(), 0o644)  # the temp file is 0600; predictions are an ordinary readable file
        for ranking in rankings:
            f.write(json.dumps({"ranking": [str(c) for c in ranking]}, ensure_ascii=False))
            f.write("\n")
    return path
