"""Evaluation of any ranker on any dataset in the format of ``docs/FORMAT.md``.

A *scorer* gives every candidate of every sample a score; :func:`evaluate` turns scores into rankings (ties
broken by a seeded random order, never by the candidate list's order), computes :mod:`training.metrics`, and
writes the metrics JSON, a confusion-matrix PNG beside it, and optionally one ranking per line.

Scorers here: ``RandomScorer`` (chance), ``EngineScorer`` (any engine ranker: the text baseline or an exported
PBR model directory, through onnxruntime — what the bots serve), and ``TextLogRegScorer`` (a text-only
classifier on frozen sentence embeddings, fitted on the train split's labels: the "reads text only" row).
PBR checkpoints get a scorer in :mod:`training.pbr_scorer`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from training.data.format import Sample, StickerDataset, alt_mapping, load_sticker_image
from training.metrics import (
    confusion_matrix_png,
    gold_and_predicted,
    normalise_alt,
    ranking_metrics,
    write_predictions_jsonl,
)

TIE_SEED = 20240701


class Scorer(Protocol):
    name: str

    def score(
        self,
        samples: Sequence[Sample],
        candidates: Sequence[Sequence[str]],
        dataset: StickerDataset,
        sticker_text: bool,
    ) -> list[np.ndarray]: ...


def rank(scores: np.ndarray, ids: Sequence[str], rng: np.random.Generator) -> list[str]:
    """Best first; equal scores in a random (seeded) order so no candidate position is favoured."""
    tiebreak = rng.random(len(ids))
    order = np.lexsort((tiebreak, -np.asarray(scores, dtype=np.float64)))
    return [ids[i] for i in order]


def context_texts(sample: Sample) -> list[str]:
    return [t.text for t in sample.context]


@dataclass
class RandomScorer:
    name: str = "chance"
    seed: int = 0

    def score(
        self,
        samples: Sequence[Sample],
        candidates: Sequence[Sequence[str]],
        dataset: StickerDataset,
        sticker_text: bool,
    ) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        return [rng.random(len(c)) for c in candidates]


class EngineScorer:
    """Scores with an engine ranker: dialogue vector · sticker vector. With ``rerank_top`` (a model with a
    matching head), as ``/sticker`` ranks: the dual encoder's best ``rerank_top`` are re-ranked by the matching
    head's logits and placed above the rest, which keep their dual-encoder order."""

    def __init__(self, ranker: Any, batch_size: int = 64, rerank_top: int = 0) -> None:
        self.ranker = ranker
        self.rerank_top = rerank_top if getattr(ranker, "rerank_scores", None) is not None else 0
        rerank = f", matching head over the top {self.rerank_top}" if self.rerank_top else ""
        self.name = f"{ranker.name} ({ranker.version}{rerank})"
        self.batch_size = batch_size

    def sticker_vectors(
        self, ids: Sequence[str], dataset: StickerDataset, sticker_text: bool, alt: dict[str, str]
    ) -> dict[str, np.ndarray]:
        from engine.ranking import StickerInput, per_pack

        out: dict[str, np.ndarray] = {}
        # a ranker that names per pack reads the set's candidates as the one pack they are named in
        batch = max(1, len(ids)) if per_pack(self.ranker) is not None else self.batch_size
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            inputs = [
                StickerInput(
                    load_sticker_image(dataset.index.find(i)) if self.ranker.needs_images else None,
                    alt.get(i) if sticker_text else None,
                )
                for i in chunk
            ]
            for i, v in zip(chunk, self.ranker.embed_stickers(inputs), strict=True):
                out[i] = v
        return out

    def score(
        self,
        samples: Sequence[Sample],
        candidates: Sequence[Sequence[str]],
        dataset: StickerDataset,
        sticker_text: bool,
    ) -> list[np.ndarray]:
        alt = alt_mapping(dataset.index, samples)
        unique = sorted({c for cs in candidates for c in cs})
        vecs = self.sticker_vectors(unique, dataset, sticker_text, alt)
        texts = [self.ranker.dialogue_text(context_texts(s)) for s in samples]
        out: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            q = self.ranker.embed_dialogues(texts[start : start + self.batch_size])
            for row, cands in zip(q, candidates[start : start + self.batch_size], strict=True):
                scores = np.array([float(vecs[c] @ row) for c in cands])
                if self.rerank_top and len(cands) > 1:
                    scores = self._reranked(row, np.stack([vecs[c] for c in cands]), scores)
                out.append(scores)
        return out

    def _reranked(self, dialogue: np.ndarray, stickers: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """The dual encoder's shortlist ordered by the matching head, above every other candidate."""
        shortlist = np.argsort(-scores, kind="stable")[: self.rerank_top]
        logits = np.asarray(self.ranker.rerank_scores(dialogue, stickers[shortlist]), dtype=np.float64)
        final = scores - scores.max() - 1.0  # the rest: below the shortlist, in their own order
        final[shortlist] = logits - logits.min()
        return final


class TextLogRegScorer:
    """Logistic regression on frozen sentence embeddings of the dialogue, fitted on the train split's
    ``sticker_alt`` labels; a candidate scores the probability of its emoji class. Reads text only."""

    name = "text-only logistic regression (frozen MiniLM)"

    def __init__(
        self, embed: Callable[[list[str]], np.ndarray], train: Sequence[Sample], c: float = 1.0
    ) -> None:
        from sklearn.linear_model import LogisticRegression

        pairs = [(s, normalise_alt(s.current.alt)) for s in train]
        pairs = [(s, a) for s, a in pairs if a]
        self.embed = embed
        x = self._features([s for s, _ in pairs])
        self.model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
        self.model.fit(x, [a for _, a in pairs])
        self.classes = {str(c): i for i, c in enumerate(self.model.classes_)}

    def _features(self, samples: Sequence[Sample]) -> np.ndarray:
        texts = [" [SEP] ".join(context_texts(s)) for s in samples]
        return np.concatenate([self.embed(texts[i : i + 256]) for i in range(0, len(texts), 256)])

    def score(
        self,
        samples: Sequence[Sample],
        candidates: Sequence[Sequence[str]],
        dataset: StickerDataset,
        sticker_text: bool,
    ) -> list[np.ndarray]:
        alt = alt_mapping(dataset.index, samples)
        probs = self.model.predict_proba(self._features(samples))
        out = []
        for p, cands in zip(probs, candidates, strict=True):
            out.append(
                np.array(
                    [
                        p[self.classes[a]] if (a := normalise_alt(alt.get(c))) in self.classes else 0.0
                        for c in cands
                    ]
                )
            )
        return out


def evaluate(
    dataset: StickerDataset,
    split: str,
    scorer: Scorer,
    sticker_text: bool = False,
    max_samples: int | None = None,
    json_path: Path | None = None,
    predictions_path: Path | None = None,
    seed: int = TIE_SEED,
) -> dict[str, Any]:
    """Score, rank and measure; returns the metrics dict (also written to ``json_path`` with a PNG)."""
    samples = dataset.load(split)
    if max_samples is not None:
        samples = samples[:max_samples]
    candidates = [dataset.candidates(s) for s in samples]
    started = time.time()
    scores = scorer.score(samples, candidates, dataset, sticker_text)
    rng = np.random.default_rng(seed)
    rankings = [rank(sc, cands, rng) for sc, cands in zip(scores, candidates, strict=True)]
    positives = [s.current.sticker_id for s in samples]
    alt = alt_mapping(dataset.index, samples)
    metrics: dict[str, Any] = ranking_metrics(rankings, positives, alt)
    metrics.update(
        model=scorer.name,
        dataset=str(dataset.root),
        split=split,
        sticker_text=sticker_text,
        candidates_per_sample=float(np.mean([len(c) for c in candidates])) if candidates else 0.0,
        seconds=round(time.time() - started, 1),
    )
    if json_path is not None:
        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
        gold, pred = gold_and_predicted(rankings, positives, alt)
        if gold:
            confusion_matrix_png(gold, pred, sorted(set(gold)), json_path.with_suffix(".png"))
    if predictions_path is not None:
        write_predictions_jsonl(predictions_path, rankings)
    return metrics
