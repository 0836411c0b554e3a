"""One epoch's order, its split between ranks, and the batches cut from :class:`training.prepare.TrainData`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from training.features import TextFeatures
from training.prepare import TrainData


def epoch_order(data: TrainData, epoch: int, seed: int) -> Tensor:
    """The sample order of one epoch, the same on every rank: a permutation when all weights are equal, else
    ``len(data)`` weighted draws with replacement (probability of a sample ∝ its dataset's weight)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    w = data.sample_weight
    if bool((w == w[0]).all()):
        return torch.randperm(len(data), generator=g)
    return torch.multinomial(w / w.sum(), len(data), replacement=True, generator=g)


def rank_batches(order: Tensor, batch_size: int, rank: int, world: int) -> list[Tensor]:
    """Split one epoch between ranks (like DistributedSampler without padding: every rank gets the same number
    of full batches) and into batches."""
    per_rank = len(order) // world
    n_batches = per_rank // batch_size
    if n_batches == 0 and per_rank > 0:
        n_batches, batch_size = 1, per_rank
    mine = order[rank : per_rank * world : world]
    return [mine[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]


def text_input(feats: TextFeatures, rows: Tensor) -> dict[str, Tensor]:
    if feats.pooled is not None:
        return {"pooled": feats.pooled[rows]}
    hidden, mask = feats.gather_hidden(rows)
    return {"hidden": hidden, "mask": mask}


def make_batch(data: TrainData, rows: Tensor, g: torch.Generator) -> dict[str, Any]:
    sticker = data.sample_sticker[rows]
    uniq, inv = torch.unique(sticker, return_inverse=True)
    k = data.view_feats.shape[1]
    v1 = torch.randint(0, k, (len(uniq),), generator=g)
    v2 = (v1 + torch.randint(1, k, (len(uniq),), generator=g)) % k if k > 1 else v1.clone()
    # The second view: with probability ``cross_style`` the same emoji drawn in another set (identity across
    # styles, PBR's intra-topic positive made style-invariant), else another view of the same picture.
    second = uniq.clone()
    if data.partners is not None and data.cross_style > 0:
        draw = torch.rand(len(uniq), generator=g) < data.cross_style
        for j, (sid, take) in enumerate(zip(uniq.tolist(), draw.tolist(), strict=True)):
            options = data.partners[sid]
            if take and options:
                second[j] = options[int(torch.randint(0, len(options), (1,), generator=g))]
                v2[j] = int(torch.randint(0, k, (1,), generator=g))
    ident = data.identity[uniq] if data.identity is not None else uniq
    batch: dict[str, Any] = {
        "text": text_input(data.text, data.sample_text[rows]),
        "dialogue_ids": data.sample_text[rows],
        "polarity": data.polarity[rows],
        "inv": inv,
        "uniq": uniq,
        "topics": data.topics[uniq],
        "img1": data.view_feats[uniq, v1],
        "img2": data.view_feats[second, v2],
        "teacher1": data.teacher_sims[uniq, v1],
        "teacher2": data.teacher_sims[second, v2],
        "ident": ident,
        "mine_seed": int(torch.randint(0, 2**31 - 1, (1,), generator=g)),
    }
    if data.sticker_text is not None:
        batch["sticker_text"] = text_input(data.sticker_text, uniq)
        has = data.has_text[uniq]
        if data.text_dropout > 0:
            has = has & (torch.rand(len(uniq), generator=g) >= data.text_dropout)
        batch["has_text"] = has
    return batch


def batch_to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, Tensor):
            out[k] = v.to(device)
        elif isinstance(v, dict):
            out[k] = batch_to(v, device)
        else:
            out[k] = v
    return out


def text_rows(texts: Sequence[str]) -> tuple[list[str], list[int]]:
    """Distinct texts (first-seen order) and the row of each input text."""
    rows: dict[str, int] = {}
    out = [rows.setdefault(t, len(rows)) for t in texts]
    return list(rows), out
