"""Emotion knowledge distillation: KL(teacher ‖ student) over the 7 emotion classes.

Teacher distribution = softmax(sim(teacher sticker features, per-class emotion anchors) / temperature), from the
frozen :class:`training.teacher.Teacher`; the student is the model's emotion head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from training.losses._base import Logs, LossTerm, zero_with_grad


class EmotionKDLoss(LossTerm):
    """``temperature`` sharpens the teacher's anchor similarities (cosines in [-1, 1], so it is small, ~0.1);
    ``student_temperature`` softens the student logits (Hinton KD; the loss is multiplied by its square)."""

    name = "emotion_kd"

    def __init__(
        self,
        weight: float = 1.0,
        enabled: bool = True,
        temperature: float = 0.1,
        student_temperature: float = 1.0,
    ) -> None:
        super().__init__(weight, enabled)
        self.temperature = float(temperature)
        self.student_temperature = float(student_temperature)

    def teacher_distribution(self, teacher_sims: Tensor) -> Tensor:
        return F.softmax(teacher_sims / self.temperature, dim=-1)

    def forward(
        self,
        student_logits: Tensor,
        teacher_sims: Tensor | None = None,
        teacher_probs: Tensor | None = None,
        valid: Tensor | None = None,
    ) -> tuple[Tensor, Logs]:
        """Give the teacher as anchor similarities (N, 7) or as a distribution (N, 7); ``valid`` (N,) bool skips
        stickers without a teacher target."""
        if not self.active:
            return self._off(student_logits)
        if (teacher_sims is None) == (teacher_probs is None):
            raise ValueError("give exactly one of teacher_sims, teacher_probs")
        if teacher_probs is not None:
            p_t = teacher_probs
        else:
            assert teacher_sims is not None  # exactly one of the two was given
            p_t = self.teacher_distribution(teacher_sims)
        p_t = p_t.detach().to(student_logits.dtype)
        log_q = F.log_softmax(student_logits / self.student_temperature, dim=-1)
        per_row = (torch.xlogy(p_t, p_t) - p_t * log_q).sum(dim=-1)
        if valid is not None:
            valid = valid.to(torch.bool)
            if not bool(valid.any()):
                return zero_with_grad(student_logits), {self.name: 0.0}
            per_row = per_row[valid]
        loss = per_row.mean() * self.student_temperature**2
        with torch.no_grad():
            agree = (student_logits.argmax(-1) == p_t.argmax(-1)).float()
            if valid is not None:
                agree = agree[valid]
        return self.weight * loss, {
            self.name: float(loss.detach()),
            f"{self.name}/agree": float(agree.mean()),
        }
