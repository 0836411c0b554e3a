"""Fine-tune from an existing checkpoint with the standard trainer (issue 7).

``training.train.train`` always builds a fresh model (``training.pipeline.build_model``). This module runs the
same trainer, unchanged, with the model initialised from a checkpoint: the checkpoint's architecture replaces
``cfg.model`` and, for the duration of the run, ``build_model`` returns the loaded weights. Everything else —
caches, losses, DDP, checkpoints, metrics, plots — is the trainer's own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from training.config import TrainConfig
from training.model import PBRModel, load_checkpoint


@contextlib.contextmanager
def _initialised_from(model: PBRModel) -> Iterator[None]:
    import training.pipeline as pipeline

    original = pipeline.build_model

    def build_model(cfg: TrainConfig) -> PBRModel:
        pipeline.check_cacheable(model.config)
        return model

    pipeline.build_model = build_model  # type: ignore[assignment]
    try:
        yield
    finally:
        pipeline.build_model = original  # type: ignore[assignment]


def finetune(cfg: TrainConfig, checkpoint: Path) -> dict[str, Any]:
    """Train ``cfg`` starting from ``checkpoint``'s weights; returns the trainer's summary."""
    from training.train import train

    loaded = load_checkpoint(checkpoint)
    model = loaded.model.train()
    cfg.model = loaded.config.to_dict()
    cfg.tiny = loaded.config.image_arch == "tiny"
    with _initialised_from(model):
        return train(cfg)
