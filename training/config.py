"""``TrainConfig``: one YAML/JSON file in ``configs/`` plus ``--set a.b.c=value`` overrides.

Values of ``--set`` are parsed as YAML scalars/lists (``true``, ``3e-4``, ``[1, 2]``, ``null``); a dotted path
into a list of datasets uses the index (``data.train.0.max_samples=1000``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from training.model import PBRConfig


@dataclass
class DatasetSpec:
    path: str
    weight: float = 1.0
    max_samples: int | None = None
    split: str = "train"
    name: str | None = None
    # Validation only: read each candidate's sticker text (None: whenever the model uses sticker text). List a
    # set twice, once with False, to report both readings.
    sticker_text: bool | None = None

    @property
    def label(self) -> str:
        return self.name or Path(self.path).name


@dataclass
class DataConfig:
    train: list[DatasetSpec] = field(default_factory=list)
    val: list[DatasetSpec] = field(default_factory=list)
    max_turns: int = 8  # dialogue turns the model reads (engine.preprocess.dialogue_to_text)
    views: int = 8  # cached sticker views: 0 clean + (views-1) augmented
    cache_dir: str = "var/cache"
    use_cache: bool = True
    # Identity across art styles: the probability that a sticker's second view (intra-topic's positive) is the
    # same emoji drawn in another set of the training data, rather than another view of the same picture.
    cross_style: float = 0.0
    # Sticker text dropout: the probability that a training sticker is read by its image alone (its text
    # hidden), so that a sticker without text still ranks well. Only with model.use_sticker_text.
    sticker_text_dropout: float = 0.0


@dataclass
class LossSwitch:
    enabled: bool = True
    weight: float = 1.0


@dataclass
class TopicLossConfig(LossSwitch):
    temperature: float = 0.1


@dataclass
class KDLossConfig(LossSwitch):
    temperature: float = 0.1
    student_temperature: float = 1.0


@dataclass
class MatchingLossConfig(LossSwitch):
    balanced: bool = True
    num_negatives: int = 2
    pool_size: int = 8
    polarity_weight: float = 0.5
    sample: bool = True


@dataclass
class LossesConfig:
    contrastive: LossSwitch = field(default_factory=LossSwitch)
    inter_topic: TopicLossConfig = field(default_factory=lambda: TopicLossConfig(weight=0.5))
    intra_topic: TopicLossConfig = field(default_factory=lambda: TopicLossConfig(weight=0.5))
    emotion_kd: KDLossConfig = field(default_factory=lambda: KDLossConfig(weight=0.5))
    matching: MatchingLossConfig = field(default_factory=MatchingLossConfig)

    def names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self)]


@dataclass
class OptimConfig:
    lr: float = 1e-3
    text_lr: float = 3e-5  # trainable BERT layers (partial fine-tuning)
    image_lr: float = 1e-4  # trainable image-tower blocks (partial fine-tuning)
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0


@dataclass
class TeacherConfig:
    hidden: int = 128
    clusters_per_class: int = 3
    epochs: int = 300


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=dict)  # PBRConfig fields
    losses: LossesConfig = field(default_factory=LossesConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    batch_size: int = 64  # per process
    epochs: int = 3
    max_steps: int | None = None
    seed: int = 0
    eval_every: int = 0  # steps between validations; 0 = once per epoch
    val_max_samples: int | None = None
    out_dir: str = "var/runs/pbr"
    threads: int = 0  # torch intra-op threads; 0 = leave as is
    progress: bool = True
    tiny: bool = False  # tests: build_tiny_pbr-style random towers instead of the pretrained ones

    def pbr_config(self) -> PBRConfig:
        return PBRConfig.from_dict(dict(self.model))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        obj = _build(cls, d, "")
        obj.pbr_config()  # validate the model fields early
        return obj


def _build(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"{where or 'config'}: expected a mapping, got {value!r}")
        hints = get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ValueError(f"{where or 'config'}: unknown keys {unknown} (known: {sorted(names)})")
        kwargs = {k: _build(hints[k], v, f"{where}.{k}".lstrip(".")) for k, v in value.items()}
        return tp(**kwargs)
    if origin is list:
        (item,) = get_args(tp)
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list")
        return [_build(item, v, f"{where}.{i}") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping")
        return dict(value)
    args = get_args(tp)
    if args and type(None) in args:  # Optional[X]
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _build(inner[0], value, where)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, bool):
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    if tp in (int, str, bool) and not isinstance(value, tp):
        raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def parse_value(text: str) -> Any:
    import yaml

    value = yaml.safe_load(text) if text.strip() else ""
    if isinstance(value, str):  # YAML 1.1 reads "3e-4" as a string
        try:
            return float(value) if any(c in value.lower() for c in ".e") else int(value)
        except ValueError:
            return value
    return value


def apply_override(d: dict[str, Any], assignment: str) -> None:
    """``a.b.c=value`` into a nested dict (lists indexed by number); creates missing mapping keys."""
    if "=" not in assignment:
        raise ValueError(f"override {assignment!r} is not KEY=VALUE")
    key, raw = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ValueError(f"override {assignment!r} has an empty key")
    node: Any = d
    for i, p in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[int(p)]
        else:
            if p not in node or node[p] is None:
                node[p] = {}
            node = node[p]
        if not isinstance(node, dict | list):
            raise ValueError(f"override {assignment!r}: {'.'.join(parts[: i + 1])} is not a mapping")
    last = parts[-1]
    value = parse_value(raw)
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def read_config_file(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        return json.loads(text)
    import yaml

    return yaml.safe_load(text) or {}


def load_config(
    path: Path | str | None = None, overrides: list[str] | tuple[str, ...] = (), out_dir: str | None = None
) -> TrainConfig:
    d: dict[str, Any] = TrainConfig().to_dict() if path is None else read_config_file(path)
    for o in overrides:
        apply_override(d, o)
    if out_dir is not None:
        d["out_dir"] = str(out_dir)
    return TrainConfig.from_dict(d)
