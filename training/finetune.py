"""Fine-tune from an existing checkpoint with the standard trainer.

Retraining on opted-in chat logs starts from the model being served rather than from scratch, so this runs the
trainer unchanged (``training.train.train``) with the model initialised from a checkpoint: the checkpoint's
architecture replaces ``cfg.model`` and its weights are the starting point. Everything else — caches, losses,
DDP, checkpoints, metrics, plots — is the trainer's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.config import TrainConfig
from training.model import load_checkpoint


def finetune(cfg: TrainConfig, checkpoint: Path) -> dict[str, Any]:
    """Train ``cfg`` starting from ``checkpoint``'s weights; returns the trainer's summary."""
    from training.train import train

    loaded = load_checkpoint(checkpoint)
    model = loaded.model.train()
    cfg.model = loaded.config.to_dict()
    cfg.tiny = loaded.config.image_arch == "tiny"
    return train(cfg, model=model)
