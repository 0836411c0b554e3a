"""Dialogue↔sticker InfoNCE in both directions with the model's clamped learnable logit scale."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from training.losses._base import IdsLike, Logs, LossTerm, same_id_matrix


class ContrastiveLoss(LossTerm):
    """Symmetric InfoNCE over a batch of N aligned pairs (dialogue i ↔ sticker i).

    Duplicates: when sticker i and sticker j (i ≠ j) share a sticker id (or dialogues share a dialogue id), the pair
    (i, j) is neither the positive nor a negative: it is masked out of both softmaxes. (The paper's code counts such
    copies of the positive as negatives.)
    """

    name = "contrastive"

    def forward(
        self,
        dialogue: Tensor,
        sticker: Tensor,
        logit_scale: Tensor | float,
        sticker_ids: IdsLike | None = None,
        dialogue_ids: IdsLike | None = None,
    ) -> tuple[Tensor, Logs]:
        if not self.active:
            return self._off(dialogue)
        n = dialogue.shape[0]
        if sticker.shape[0] != n:
            raise ValueError(f"need aligned pairs: {n} dialogues vs {sticker.shape[0]} stickers")
        logits = logit_scale * dialogue @ sticker.T
        eye = torch.eye(n, dtype=torch.bool, device=logits.device)
        dup = torch.zeros_like(eye)
        if sticker_ids is not None:
            dup |= same_id_matrix(sticker_ids, device=logits.device)
        if dialogue_ids is not None:
            dup |= same_id_matrix(dialogue_ids, device=logits.device)
        dup &= ~eye
        logits = logits.masked_fill(dup, torch.finfo(logits.dtype).min)
        target = torch.arange(n, device=logits.device)
        t2i = F.cross_entropy(logits, target)
        i2t = F.cross_entropy(logits.T, target)
        loss = 0.5 * (t2i + i2t)
        with torch.no_grad():
            logs: Logs = {
                self.name: float(loss),
                f"{self.name}/t2i": float(t2i),
                f"{self.name}/i2t": float(i2t),
                f"{self.name}/acc_t2i": float((logits.argmax(1) == target).float().mean()),
                f"{self.name}/acc_i2t": float((logits.argmax(0) == target).float().mean()),
                f"{self.name}/masked_duplicates": float(dup.sum()),
                "logit_scale": float(logit_scale),
            }
        return self.weight * loss, logs
