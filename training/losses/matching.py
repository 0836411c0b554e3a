"""Binary cross-entropy of the matching head on positive pairs and mined hard negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from training.losses._base import Logs, LossTerm, zero_with_grad


class MatchingLoss(LossTerm):
    """``balanced``: mean BCE over positives and mean BCE over negatives count equally (mined negatives outnumber
    the positives, up to 2 × num_negatives : 1); otherwise one mean over all pairs."""

    name = "matching"

    def __init__(self, weight: float = 1.0, enabled: bool = True, balanced: bool = True) -> None:
        super().__init__(weight, enabled)
        self.balanced = bool(balanced)

    def forward(self, pos_logits: Tensor, neg_logits: Tensor) -> tuple[Tensor, Logs]:
        if not self.active:
            return self._off(pos_logits)
        pos_logits, neg_logits = pos_logits.reshape(-1), neg_logits.reshape(-1)
        if pos_logits.numel() == 0 and neg_logits.numel() == 0:
            return zero_with_grad(pos_logits, neg_logits), {self.name: 0.0}
        pos = F.binary_cross_entropy_with_logits(pos_logits, torch.ones_like(pos_logits), reduction="sum")
        neg = F.binary_cross_entropy_with_logits(neg_logits, torch.zeros_like(neg_logits), reduction="sum")
        n_pos, n_neg = pos_logits.numel(), neg_logits.numel()
        if self.balanced:
            parts = [x / n for x, n in ((pos, n_pos), (neg, n_neg)) if n]
            loss = sum(parts) / len(parts)
        else:
            loss = (pos + neg) / (n_pos + n_neg)
        assert isinstance(loss, Tensor)
        with torch.no_grad():
            logs: Logs = {self.name: float(loss), f"{self.name}/negatives": float(n_neg)}
            if n_pos:
                logs[f"{self.name}/pos_acc"] = float((pos_logits > 0).float().mean())
            if n_neg:
                logs[f"{self.name}/neg_acc"] = float((neg_logits < 0).float().mean())
        return self.weight * loss, logs
