"""The PBR model: dialogue and sticker towers, projections, emotion and matching heads, checkpoints."""

from training.model._checkpoint import LoadedCheckpoint, load_checkpoint, save_checkpoint
from training.model._config import PBRConfig
from training.model._pbr import (
    EmotionHead,
    MatchHead,
    PBRModel,
    build_pbr,
    build_tiny_pbr,
    tiny_bert_config,
)
from training.model._towers import (
    EfficientNetTower,
    TextTower,
    TinyConvTower,
    default_text_dir,
    efficientnet_lite0_weights,
    mean_pool,
)

__all__ = [
    "EfficientNetTower",
    "EmotionHead",
    "LoadedCheckpoint",
    "MatchHead",
    "PBRConfig",
    "PBRModel",
    "TextTower",
    "TinyConvTower",
    "build_pbr",
    "build_tiny_pbr",
    "default_text_dir",
    "efficientnet_lite0_weights",
    "load_checkpoint",
    "mean_pool",
    "save_checkpoint",
    "tiny_bert_config",
]
