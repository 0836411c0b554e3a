"""The PBR model a training config describes, and the facts about it the cached-feature trainer needs.

The cached-feature design: the image tower is frozen (``image_trainable_blocks=0``) and its features of K views
per sticker are cached; the text tower is either frozen (``text_trainable_layers=0``: cached pooled features,
heads-only training) or partly trainable (``N>0``: cached hidden states entering layer L−N, only the top N layers
run in training). :func:`stop_layer` and :func:`image_stop` say where the cached part ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from training.config import TrainConfig
from training.model import PBRConfig, PBRModel, build_pbr, default_text_dir, tiny_bert_config


def tiny_model_fields() -> dict[str, Any]:
    """PBRConfig fields of the test-sized model (as ``build_tiny_pbr``), frozen towers."""
    return {
        "embed_dim": 16,
        "image_size": 32,
        "image_arch": "tiny",
        "text_config": tiny_bert_config(),
        "text_trainable_layers": 0,
        "image_trainable_blocks": 0,
        "emotion_hidden": 16,
        "match_hidden": 16,
        "tiny_width": 8,
        "max_tokens": 16,
        "sticker_text_max_tokens": 8,
    }


def build_model(cfg: TrainConfig) -> PBRModel:
    """The PBR model of a config, seeded; ``tiny`` → random small towers (tests), else pretrained."""
    fields = dict(tiny_model_fields()) if cfg.tiny else {}
    fields.update(cfg.model)
    pcfg = PBRConfig.from_dict(fields)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_pbr(pcfg, pretrained=not cfg.tiny)
    check_cacheable(model.config)
    return model


def check_cacheable(cfg: PBRConfig) -> None:
    if cfg.image_trainable_blocks < 0:
        raise ValueError(
            "the cached-feature trainer caches the image tower below its trainable blocks: set "
            "model.image_trainable_blocks >= 0 (0: frozen)"
        )
    if cfg.text_trainable_layers < 0:
        raise ValueError("the cached-feature trainer needs text_trainable_layers >= 0 (embeddings frozen)")


def stop_layer(model: PBRModel) -> int | None:
    """None: pooled cache (frozen text tower); else the first trainable BERT layer."""
    n = model.config.text_trainable_layers
    if n == 0:
        return None
    return model.text_tower.num_layers - min(n, model.text_tower.num_layers)


def image_stop(model: PBRModel) -> int | None:
    """None: pooled-feature cache (frozen image tower); else the first trainable block (maps are cached)."""
    n = model.config.image_trainable_blocks
    if n == 0:
        return None
    blocks = int(model.image_tower.num_blocks)
    return blocks - min(n, blocks)


def tokenizer_file(text_dir: str | Path | None = None) -> Path:
    """The text tower's tokenizer: the one beside its weights (``model.text_dir``, e.g. the e5 tower written
    by scripts/e5_tower.py), else MiniLM's."""
    return Path(text_dir or default_text_dir()) / "tokenizer.json"
