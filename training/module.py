"""The module whose ``forward`` computes every training loss of a batch from cached tower features."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.build import image_stop
from training.config import LossesConfig
from training.features import run_bert_layers
from training.losses import (
    ContrastiveLoss,
    EmotionKDLoss,
    HardNegativeMiner,
    InterTopicLoss,
    IntraTopicLoss,
    MatchingLoss,
    sticker_polarity,
)
from training.model import PBRModel, mean_pool


def fuse_sticker(
    model: PBRModel, image: Tensor, text_pooled: Tensor | None, has_text: Tensor | None
) -> Tensor:
    """``PBRModel.encode_sticker`` from image-tower features and pooled sticker-text features."""
    img = F.normalize(model.image_proj(image), dim=-1)
    if not model.config.use_sticker_text or text_pooled is None:
        return img
    text = F.normalize(model.sticker_text_proj(text_pooled), dim=-1)
    gate = torch.sigmoid(model.text_gate(torch.cat([img, text], dim=-1)))
    if has_text is not None:
        gate = torch.where(has_text.unsqueeze(-1).to(torch.bool), gate, torch.ones_like(gate))
    return F.normalize(gate * img + (1 - gate) * text, dim=-1)


class PBRTrainModule(nn.Module):
    """Wraps a :class:`PBRModel`; ``forward(batch)`` computes every enabled loss (mining and the matching head
    included), so one DDP forward/backward covers every trained parameter."""

    def __init__(self, model: PBRModel, losses: LossesConfig, stop: int | None) -> None:
        super().__init__()
        self.model = model
        self.stop = stop
        # The first trainable image block: batches carry the maps entering it.
        self.image_start = image_stop(model)
        lc = losses
        self.contrastive = ContrastiveLoss(lc.contrastive.weight, lc.contrastive.enabled)
        self.inter_topic = InterTopicLoss(
            lc.inter_topic.weight, lc.inter_topic.enabled, lc.inter_topic.temperature
        )
        self.intra_topic = IntraTopicLoss(
            lc.intra_topic.weight, lc.intra_topic.enabled, lc.intra_topic.temperature
        )
        self.emotion_kd = EmotionKDLoss(
            lc.emotion_kd.weight,
            lc.emotion_kd.enabled,
            lc.emotion_kd.temperature,
            lc.emotion_kd.student_temperature,
        )
        m = lc.matching
        self.matching = MatchingLoss(m.weight, m.enabled, m.balanced)
        self.miner = HardNegativeMiner(m.num_negatives, m.pool_size, m.polarity_weight, m.sample)

    def freeze_unused(self) -> None:
        """Parameters no enabled loss trains get requires_grad False (then no rank waits for their grads)."""
        m = self.model
        if not self.emotion_kd.active:
            for p in m.emotion_head.parameters():
                p.requires_grad_(False)
        if not self.matching.active:
            for p in m.match_head.parameters():
                p.requires_grad_(False)
        if not self.contrastive.active:
            m.logit_scale.requires_grad_(False)
        if not (self.contrastive.active or self.matching.active):
            for p in m.text_proj.parameters():
                p.requires_grad_(False)
            for p in m.text_tower.parameters():
                p.requires_grad_(False)

    def pooled_text(self, text: dict[str, Tensor]) -> Tensor:
        if "pooled" in text:
            return text["pooled"]
        bert = self.model.text_tower.bert
        hidden = run_bert_layers(
            bert, text["hidden"], text["mask"], int(self.stop or 0), len(bert.encoder.layer)
        )
        return mean_pool(hidden, text["mask"])

    def dialogue(self, text: dict[str, Tensor]) -> Tensor:
        return F.normalize(self.model.text_proj(self.pooled_text(text)), dim=-1)

    def image_features(self, image: Tensor) -> Tensor:
        """Pooled image features: cached ones as they are, cached maps through the trainable blocks."""
        if image.dim() == 2:
            return image
        return self.model.image_tower.suffix(image.float(), int(self.image_start or 0))

    def sticker(
        self, image: Tensor, text: dict[str, Tensor] | None = None, has_text: Tensor | None = None
    ) -> Tensor:
        pooled = self.pooled_text(text) if text is not None else None
        return fuse_sticker(self.model, self.image_features(image), pooled, has_text)

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        model = self.model
        d = self.dialogue(batch["text"])
        st, has = batch.get("sticker_text"), batch.get("has_text")
        s1 = self.sticker(batch["img1"], st, has)
        inv = batch["inv"]
        # What each batch sticker shows: the same emoji in two art styles is one thing to every loss (never a
        # negative of the other).
        uniq_ids = batch["ident"] if "ident" in batch else torch.arange(s1.shape[0], device=s1.device)
        s = s1[inv]
        logs: dict[str, float] = {}
        total = torch.zeros((), device=d.device)

        loss, lg = self.contrastive(
            d, s, model.scale(), sticker_ids=uniq_ids[inv], dialogue_ids=batch["dialogue_ids"]
        )
        total, logs = total + loss, {**logs, **lg}
        if self.inter_topic.active or self.intra_topic.active:
            s2 = self.sticker(batch["img2"], st, has)
            loss, lg = self.inter_topic(s1, batch["topics"])
            total, logs = total + loss, {**logs, **lg}
            loss, lg = self.intra_topic(s1, s2, batch["topics"], uniq_ids)
            total, logs = total + loss, {**logs, **lg}
        emotion = model.emotion_logits(s1)
        loss, lg = self.emotion_kd(emotion, teacher_sims=batch["teacher1"])
        total, logs = total + loss, {**logs, **lg}
        if self.matching.active:
            sim = d @ s1.T
            g = torch.Generator().manual_seed(int(batch["mine_seed"]))
            mined = self.miner(
                sim,
                batch["polarity"],
                sticker_polarity(emotion),
                uniq_ids[inv],
                uniq_ids,
                batch["dialogue_ids"],
                generator=g,
            )
            rows, cols = mined.pairs()
            pos = model.match_logits(d, s)
            neg = model.match_logits(d[rows], s1[cols])
            loss, lg = self.matching(pos, neg)
            total, logs = total + loss, {**logs, **lg}
        logs["total"] = float(total.detach())
        return total, logs
