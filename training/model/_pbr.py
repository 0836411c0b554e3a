from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.model._config import PBRConfig
from training.model._towers import (
    TextTower,
    bert_from_config,
    build_image_tower,
    default_text_dir,
    load_bert,
)

# A sticker whose text encodes to at most this many tokens ([CLS] [SEP]) has no text: image only.
_EMPTY_TEXT_TOKENS = 2


class EmotionHead(nn.Module):
    """Sticker embedding → 7 emotion logits (order: ``training.emotions.EMOTIONS``)."""

    def __init__(self, dim: int, hidden: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
        )

    def forward(self, sticker: Tensor) -> Tensor:
        return self.net(sticker)


class MatchHead(nn.Module):
    """Re-ranking head: MLP over [t, s, t*s, |t-s|] of the two L2-normalised embeddings, plus a learned multiple
    of their cosine (so the head starts out as a scaled dual-encoder score and learns corrections)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.mlp = nn.Sequential(
            nn.Linear(4 * dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )
        self.cos_weight = nn.Parameter(torch.tensor(10.0))
        self.bias = nn.Parameter(torch.tensor(0.0))

    def forward(self, dialogue: Tensor, sticker: Tensor) -> Tensor:
        t, s = torch.broadcast_tensors(dialogue, sticker)
        feats = self.norm(torch.cat([t, s, t * s, (t - s).abs()], dim=-1))
        cos = (t * s).sum(-1)
        return self.mlp(feats).squeeze(-1) + self.cos_weight * cos + self.bias


class PBRModel(nn.Module):
    """Dialogue/sticker dual encoder with an emotion head and a matching (re-ranking) head.

    Embeddings from ``encode_dialogue``/``encode_sticker`` are L2-normalised; the dual-encoder score is their dot
    product. ``match_logits`` and ``emotion_logits`` take those normalised embeddings, so serving can re-rank from
    cached sticker embeddings alone.
    """

    def __init__(self, config: PBRConfig, text_tower: TextTower, image_tower: nn.Module) -> None:
        super().__init__()
        self.config = config
        d = config.embed_dim
        self.text_tower = text_tower
        self.image_tower = image_tower
        self.text_proj = nn.Linear(text_tower.out_dim, d)
        self.image_proj = nn.Linear(image_tower.out_dim, d)
        if config.use_sticker_text:
            # Sticker text goes through the same text tower but its own projection (an emoji name is not a
            # dialogue), then a per-dimension gate mixes it with the image embedding.
            self.sticker_text_proj = nn.Linear(text_tower.out_dim, d)
            self.text_gate = nn.Linear(2 * d, d)
        self.emotion_head = EmotionHead(d, config.emotion_hidden, config.num_emotions, config.dropout)
        self.match_head = MatchHead(d, config.match_hidden, config.dropout)
        self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init))
        self.apply_freezing()

    # -- freezing -----------------------------------------------------------------------------------------
    def apply_freezing(self) -> None:
        self.text_tower.freeze(self.config.text_trainable_layers)
        self.image_tower.freeze(self.config.image_trainable_blocks)

    # -- temperature --------------------------------------------------------------------------------------
    @property
    def max_log_scale(self) -> float:
        return math.log(self.config.max_logit_scale)

    def scale(self) -> Tensor:
        """The contrastive logit scale 1/T, clamped to [1, max_logit_scale] (gradient stops at the bounds)."""
        return self.logit_scale.clamp(0.0, self.max_log_scale).exp()

    @torch.no_grad()
    def clamp_logit_scale_(self) -> None:
        """Clamp the parameter itself (call after each optimizer step, as CLIP does)."""
        self.logit_scale.clamp_(0.0, self.max_log_scale)

    # -- encoders -----------------------------------------------------------------------------------------
    def encode_dialogue(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        pooled = self.text_tower(input_ids, attention_mask, token_type_ids)
        return F.normalize(self.text_proj(pooled), dim=-1)

    def encode_sticker(self, pixels: Tensor, text_inputs: Mapping[str, Tensor] | None = None) -> Tensor:
        """Pixels (N, 3, S, S) normalised by ``engine.preprocess`` → (N, D) unit vectors.

        ``text_inputs`` (used only with ``use_sticker_text``): ``input_ids``, ``attention_mask``, optional
        ``token_type_ids`` and optional bool ``has_text`` (N,); without ``has_text`` a row whose mask covers at
        most [CLS] [SEP] counts as textless. Textless rows, or ``text_inputs=None``, use the image alone.
        """
        image = F.normalize(self.image_proj(self.image_tower(pixels)), dim=-1)
        if not self.config.use_sticker_text or text_inputs is None:
            return image
        mask = text_inputs["attention_mask"]
        pooled = self.text_tower(text_inputs["input_ids"], mask, text_inputs.get("token_type_ids"))
        text = F.normalize(self.sticker_text_proj(pooled), dim=-1)
        has_text = text_inputs.get("has_text")
        if has_text is None:
            has_text = mask.sum(dim=1) > _EMPTY_TEXT_TOKENS
        gate = torch.sigmoid(self.text_gate(torch.cat([image, text], dim=-1)))
        gate = torch.where(has_text.unsqueeze(-1).to(torch.bool), gate, torch.ones_like(gate))
        return F.normalize(gate * image + (1 - gate) * text, dim=-1)

    def match_logits(self, dialogue_feat: Tensor, sticker_feat: Tensor) -> Tensor:
        """Row-wise (broadcasting) matching logits of paired embeddings: (N, D), (N, D) → (N,)."""
        return self.match_head(dialogue_feat, sticker_feat)

    def emotion_logits(self, sticker_feat: Tensor) -> Tensor:
        return self.emotion_head(sticker_feat)

    def similarity(self, dialogue_feat: Tensor, sticker_feat: Tensor) -> Tensor:
        """Dual-encoder cosine similarities (Nd, Ns)."""
        return dialogue_feat @ sticker_feat.T

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        pixels: Tensor,
        token_type_ids: Tensor | None = None,
        sticker_text: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """One pass for a batch of (dialogue, sticker) pairs: what the contrastive and KD losses need."""
        dialogue = self.encode_dialogue(input_ids, attention_mask, token_type_ids)
        sticker = self.encode_sticker(pixels, sticker_text)
        return {
            "dialogue": dialogue,
            "sticker": sticker,
            "emotion_logits": self.emotion_logits(sticker),
            "logit_scale": self.scale(),
        }

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


def build_pbr(config: PBRConfig, text_dir: str | Path | None = None, pretrained: bool = True) -> PBRModel:
    """Build a PBR model. ``pretrained``: load MiniLM from ``text_dir`` (or ``config.text_dir``, or the packaged
    copy) and the packaged EfficientNet-Lite0 weights. Otherwise random weights of the architecture recorded in
    ``config.text_config`` (what ``load_checkpoint`` does before loading the state dict)."""
    config = copy.deepcopy(config)
    if text_dir is not None:
        config.text_dir = str(text_dir)
    if pretrained:
        bert = load_bert(config.text_dir)
    else:
        if config.text_config is None:
            from transformers import BertConfig

            src = Path(config.text_dir) if config.text_dir else default_text_dir()
            config.text_config = BertConfig.from_pretrained(str(src), local_files_only=True).to_dict()
        bert = bert_from_config(config.text_config)
    config.text_config = _clean_bert_config(bert.config.to_diff_dict())
    text_tower = TextTower(bert)
    if config.image_arch == "tiny":
        image_tower = build_image_tower("tiny", config.image_size, width=config.tiny_width)
    else:
        image_tower = build_image_tower(
            config.image_arch,
            config.image_size,
            pretrained=pretrained,
            drop_connect_rate=config.image_drop_connect,
        )
    return PBRModel(config, text_tower, image_tower)


def _clean_bert_config(d: dict[str, Any]) -> dict[str, Any]:
    """Keep a BertConfig dict to plain JSON-able values (a checkpoint loads with ``weights_only=True``)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k.startswith("_"):
            continue
        if v is None or isinstance(v, str | int | float | bool):
            out[k] = v
        elif isinstance(v, list | tuple) and all(isinstance(x, str | int | float | bool) for x in v):
            out[k] = list(v)
        elif isinstance(v, dict) and all(
            isinstance(x, str | int | float | bool) and isinstance(kk, str) for kk, x in v.items()
        ):
            out[k] = dict(v)
    return out


def tiny_bert_config(vocab_size: int = 30522, hidden: int = 32, layers: int = 2) -> dict[str, Any]:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    ).to_dict()


def build_tiny_pbr(seed: int = 0, **overrides: Any) -> PBRModel:
    """A small randomly initialised PBR model (2-layer BERT, tiny conv net, 32 px) for fast tests."""
    fields: dict[str, Any] = {
        "embed_dim": 16,
        "image_size": 32,
        "image_arch": "tiny",
        "text_config": tiny_bert_config(),
        "text_trainable_layers": 1,
        "image_trainable_blocks": 1,
        "emotion_hidden": 16,
        "match_hidden": 16,
        "tiny_width": 8,
        "max_tokens": 16,
        "sticker_text_max_tokens": 8,
    }
    fields.update(overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_pbr(PBRConfig(**fields), pretrained=False)
