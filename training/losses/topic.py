"""Topic-level contrastive learning over sticker embeddings (topic = sticker set).

* Inter-topic (supervised-contrastive): each sticker embedding is pulled towards the other stickers of its topic
  and pushed from stickers of other topics.
* Intra-topic: two augmented views of one sticker are the positive pair; the other stickers of the SAME topic are
  the only negatives, so the model learns the fine distinctions inside one set (stickers of other topics are left
  out of the denominator: the inter-topic term already separates them).
"""

from __future__ import annotations

import torch
from torch import Tensor

from training.losses._base import IdsLike, Logs, LossTerm, same_id_matrix, zero_with_grad


def _masked_logsumexp(logits: Tensor, mask: Tensor) -> Tensor:
    return logits.masked_fill(~mask, torch.finfo(logits.dtype).min).logsumexp(dim=1)


class InterTopicLoss(LossTerm):
    """SupCon over L2-normalised sticker embeddings (N, D) with topic ids; anchors without a same-topic partner
    in the batch are skipped."""

    name = "inter_topic"

    def __init__(self, weight: float = 1.0, enabled: bool = True, temperature: float = 0.1) -> None:
        super().__init__(weight, enabled)
        self.temperature = float(temperature)

    def forward(self, embeddings: Tensor, topic_ids: IdsLike) -> tuple[Tensor, Logs]:
        if not self.active:
            return self._off(embeddings)
        n = embeddings.shape[0]
        logits = embeddings @ embeddings.T / self.temperature
        not_self = ~torch.eye(n, dtype=torch.bool, device=logits.device)
        positive = same_id_matrix(topic_ids, device=logits.device) & not_self
        anchors = positive.any(dim=1)
        if not bool(anchors.any()):
            return zero_with_grad(embeddings), {self.name: 0.0, f"{self.name}/anchors": 0.0}
        log_prob = logits - _masked_logsumexp(logits, not_self).unsqueeze(1)
        pos_count = positive.sum(dim=1).clamp(min=1)
        per_anchor = -(log_prob * positive).sum(dim=1) / pos_count
        loss = per_anchor[anchors].mean()
        return self.weight * loss, {
            self.name: float(loss.detach()),
            f"{self.name}/anchors": float(anchors.sum()),
        }


class IntraTopicLoss(LossTerm):
    """InfoNCE between two views (N, D) of the same N stickers; negatives = the views of the other stickers of the
    same topic (a sticker with the same sticker id is neither positive nor negative). Anchors with no same-topic
    negative in the batch are skipped."""

    name = "intra_topic"

    def __init__(self, weight: float = 1.0, enabled: bool = True, temperature: float = 0.1) -> None:
        super().__init__(weight, enabled)
        self.temperature = float(temperature)

    def forward(
        self, view1: Tensor, view2: Tensor, topic_ids: IdsLike, sticker_ids: IdsLike | None = None
    ) -> tuple[Tensor, Logs]:
        if not self.active:
            return self._off(view1)
        n = view1.shape[0]
        if view2.shape[0] != n:
            raise ValueError("the two views must hold the same stickers")
        z = torch.cat([view1, view2], dim=0)
        logits = z @ z.T / self.temperature
        dev = logits.device
        idx = torch.arange(2 * n, device=dev)
        sticker_of = idx % n
        same_topic = same_id_matrix(topic_ids, device=dev)[sticker_of][:, sticker_of]
        if sticker_ids is not None:
            same_sticker = same_id_matrix(sticker_ids, device=dev)[sticker_of][:, sticker_of]
        else:
            same_sticker = sticker_of[:, None] == sticker_of[None, :]
        negative = same_topic & ~same_sticker
        partner = (idx + n) % (2 * n)
        positive = torch.zeros_like(negative)
        positive[idx, partner] = True
        anchors = negative.any(dim=1)
        if not bool(anchors.any()):
            return zero_with_grad(view1, view2), {self.name: 0.0, f"{self.name}/anchors": 0.0}
        per_anchor = _masked_logsumexp(logits, positive | negative) - logits[idx, partner]
        loss = per_anchor[anchors].mean()
        return self.weight * loss, {
            self.name: float(loss.detach()),
            f"{self.name}/anchors": float(anchors.sum()),
        }
