"""Sentiment-aware hard-negative mining, in both directions, for the matching head.

score(dialogue i, sticker j) = sim(i, j) + λ · agreement(i, j)

* sim: the current dual-encoder cosine (detached).
* agreement = Σ_p P_dialogue(p) · P_sticker(p) over the polarities (negative, neutral, positive): the dialogue's
  polarity is VADER's (one-hot from the compound score, on the last turns), the sticker's is the emotion head's
  softmax summed per polarity (happiness + surprise → positive; sadness, anger, fear, disgust → negative;
  neutral). A negative that is close in meaning AND agrees in sentiment is the hardest to reject.

For each dialogue we take the ``pool_size`` best-scoring stickers and sample ``num_negatives`` among them
(``sample=False``: the best ones); the same for each sticker over dialogues. Never returned: the positive, any
sticker with the positive's sticker id (the paper's code lets the positive come back as its own negative), or the
same sticker id twice for one dialogue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

from engine.preprocess import TURN_SEPARATOR
from training.emotions import EMOTION_TO_POLARITY, NUM_EMOTIONS, POLARITIES
from training.losses._base import IdsLike, ids_to_tensor, same_id_matrix

VADER_THRESHOLD = 0.05  # VADER's own convention: compound ≥ 0.05 positive, ≤ -0.05 negative


@lru_cache(maxsize=1)
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def vader_compound(texts: Sequence[str], last_turns: int | None = 2) -> list[float]:
    """VADER compound score in [-1, 1] of each dialogue's last ``last_turns`` turns (None: the whole text)."""
    analyzer = _vader()
    out = []
    for text in texts:
        turns = text.split(TURN_SEPARATOR)
        if last_turns is not None:
            turns = turns[-last_turns:]
        out.append(float(analyzer.polarity_scores(" ".join(turns))["compound"]))
    return out


def polarity_from_compound(compound: Sequence[float] | Tensor, threshold: float = VADER_THRESHOLD) -> Tensor:
    c = torch.as_tensor(compound, dtype=torch.float32).reshape(-1)
    index = torch.ones_like(c, dtype=torch.long)
    index[c >= threshold] = POLARITIES.index("positive")
    index[c <= -threshold] = POLARITIES.index("negative")
    return torch.nn.functional.one_hot(index, len(POLARITIES)).float()


def dialogue_polarity(texts: Sequence[str], last_turns: int | None = 2) -> Tensor:
    """(N, 3) one-hot (negative, neutral, positive) from VADER; cheap enough for the data pipeline to cache."""
    return polarity_from_compound(vader_compound(texts, last_turns))


_POLARITY_MATRIX = torch.zeros(NUM_EMOTIONS, len(POLARITIES))
for _e, _p in enumerate(EMOTION_TO_POLARITY):
    _POLARITY_MATRIX[_e, _p] = 1.0


def sticker_polarity(emotion: Tensor, from_logits: bool = True) -> Tensor:
    """(N, 7) emotion logits (or probabilities) → (N, 3) polarity probabilities."""
    probs = emotion.detach().float().softmax(-1) if from_logits else emotion.detach().float()
    return probs @ _POLARITY_MATRIX.to(probs.device)


def polarity_agreement(dialogue_pol: Tensor, sticker_pol: Tensor) -> Tensor:
    """(Nd, 3), (Ns, 3) → (Nd, Ns) in [0, 1]: the probability that the two polarities are the same."""
    return dialogue_pol.float() @ sticker_pol.float().T


@dataclass
class HardNegatives:
    """Indices into the similarity matrix; -1 where fewer than ``num_negatives`` valid candidates existed."""

    stickers_for_dialogue: Tensor  # (Nd, k): columns (stickers) mined for each dialogue row
    dialogues_for_sticker: Tensor  # (Ns, k): rows (dialogues) mined for each sticker column

    def pairs(self) -> tuple[Tensor, Tensor]:
        """Unique negative (dialogue row, sticker column) pairs from both directions."""
        nd, ns = self.stickers_for_dialogue.shape[0], self.dialogues_for_sticker.shape[0]
        dev = self.stickers_for_dialogue.device
        rows_a = torch.arange(nd, device=dev)[:, None].expand_as(self.stickers_for_dialogue)
        cols_b = torch.arange(ns, device=dev)[:, None].expand_as(self.dialogues_for_sticker)
        rows = torch.cat([rows_a.reshape(-1), self.dialogues_for_sticker.reshape(-1)])
        cols = torch.cat([self.stickers_for_dialogue.reshape(-1), cols_b.reshape(-1)])
        keep = (rows >= 0) & (cols >= 0)
        flat = torch.unique(rows[keep] * ns + cols[keep])
        return flat // ns, flat % ns


def _first_occurrence(ids: Tensor) -> Tensor:
    """Bool mask: True at the first position of each distinct id."""
    n = ids.shape[0]
    same = ids[:, None] == ids[None, :]
    earlier = torch.tril(torch.ones(n, n, dtype=torch.bool, device=ids.device), diagonal=-1)
    return ~(same & earlier).any(dim=1)


def _pick(scores: Tensor, k: int, pool_size: int, sample: bool, generator: torch.Generator | None) -> Tensor:
    """Per row: ``k`` distinct columns among the ``pool_size`` best finite scores (-1 padding)."""
    rows, cols = scores.shape
    if cols == 0 or k == 0:
        return torch.full((rows, k), -1, dtype=torch.long, device=scores.device)
    pool = min(max(pool_size, k), cols)
    top_vals, top_idx = scores.topk(pool, dim=1)
    valid = torch.isfinite(top_vals)
    if sample:
        keys = torch.rand(rows, pool, generator=generator, device="cpu").to(scores.device)
    else:
        keys = torch.arange(pool, 0, -1, device=scores.device, dtype=torch.float32).expand(rows, pool).clone()
    keys = keys.masked_fill(~valid, -1.0)
    k_eff = min(k, pool)
    pos = keys.topk(k_eff, dim=1).indices
    chosen = top_idx.gather(1, pos)
    chosen = chosen.masked_fill(~valid.gather(1, pos), -1)
    if k_eff < k:
        pad = torch.full((rows, k - k_eff), -1, dtype=torch.long, device=scores.device)
        chosen = torch.cat([chosen, pad], dim=1)
    return chosen


@torch.no_grad()
def mine_hard_negatives(
    sim: Tensor,
    dialogue_pol: Tensor,
    sticker_pol: Tensor,
    positive_ids: IdsLike,
    sticker_ids: IdsLike,
    *,
    dialogue_ids: IdsLike | None = None,
    num_negatives: int = 1,
    pool_size: int = 4,
    polarity_weight: float = 0.5,
    sample: bool = True,
    generator: torch.Generator | None = None,
) -> HardNegatives:
    """``sim`` (Nd, Ns): dialogue rows × candidate sticker columns. ``positive_ids`` (Nd): the sticker id of each
    dialogue's positive; ``sticker_ids`` (Ns): the id of each column. ``dialogue_ids`` (optional, Nd) dedupes
    repeated dialogues in the sticker → dialogue direction."""
    sim = sim.detach().float()
    nd, ns = sim.shape
    dev = sim.device
    score = sim + polarity_weight * polarity_agreement(dialogue_pol.to(dev), sticker_pol.to(dev))
    is_positive = same_id_matrix(positive_ids, sticker_ids, device=dev)  # (Nd, Ns)
    if is_positive.shape != (nd, ns):
        raise ValueError(f"ids do not match sim {tuple(sim.shape)}")
    neg_inf = torch.tensor(float("-inf"), device=dev)

    col_ok = _first_occurrence(ids_to_tensor(sticker_ids, dev))
    d_scores = torch.where(is_positive | ~col_ok[None, :], neg_inf, score)
    stickers_for_dialogue = _pick(d_scores, num_negatives, pool_size, sample, generator)

    row_ok = (
        _first_occurrence(ids_to_tensor(dialogue_ids, dev))
        if dialogue_ids is not None
        else torch.ones(nd, dtype=torch.bool, device=dev)
    )
    s_scores = torch.where(is_positive | ~row_ok[:, None], neg_inf, score).T
    dialogues_for_sticker = _pick(s_scores, num_negatives, pool_size, sample, generator)
    return HardNegatives(stickers_for_dialogue, dialogues_for_sticker)


@dataclass
class HardNegativeMiner:
    """The mining settings, callable on one batch (see :func:`mine_hard_negatives`)."""

    num_negatives: int = 1
    pool_size: int = 4
    polarity_weight: float = 0.5
    sample: bool = True

    def __call__(
        self,
        sim: Tensor,
        dialogue_pol: Tensor,
        sticker_pol: Tensor,
        positive_ids: IdsLike,
        sticker_ids: IdsLike,
        dialogue_ids: IdsLike | None = None,
        generator: torch.Generator | None = None,
    ) -> HardNegatives:
        return mine_hard_negatives(
            sim,
            dialogue_pol,
            sticker_pol,
            positive_ids,
            sticker_ids,
            dialogue_ids=dialogue_ids,
            generator=generator,
            **asdict(self),  # every setting, by its name
        )
