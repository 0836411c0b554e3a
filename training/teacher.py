"""The frozen emotion teacher for emotion knowledge distillation (labels: :mod:`training.emotion_labels`).

Teacher (``fit_teacher``): frozen EfficientNet-Lite0 (ImageNet) pooled features of each sticker image,
standardised, → a small MLP (one hidden layer, class-balanced cross-entropy). The teacher's *sticker feature* is
the MLP's L2-normalised hidden layer (an emotion-shaped space). Anchors: per class, k-means (k =
``clusters_per_class``, fewer if the class is small) over the hidden features of that class's training stickers
that the MLP classifies correctly (all of them if none is); the anchors are the normalised cluster centres. A
sticker's similarity to class c is its cosine to the NEAREST of class c's centres (max over them), and
``distribution`` = softmax(similarities / temperature). A class with no training sticker gets similarity
``ABSENT_SIMILARITY`` (probability 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from engine.preprocess import ImageSpec, images_to_batch
from training._io import atomic_torch_save
from training.emotions import EMOTIONS, NUM_EMOTIONS

ABSENT_SIMILARITY: Final[float] = -1e4
TEACHER_FORMAT: Final[int] = 1
PRETRAINED_BACKBONE: Final[str] = "efficientnet-lite0"


def default_backbone(image_size: int = ImageSpec().size) -> nn.Module:
    """Frozen pretrained EfficientNet-Lite0 pooled features (1280) in eval mode."""
    from training.model import EfficientNetTower

    tower = EfficientNetTower(image_size, pretrained=True, drop_connect_rate=0.0)
    tower.freeze(0)
    return tower.eval()


class _TeacherMLP(nn.Module):
    def __init__(self, in_dim: int, hidden: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU())
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.hidden(x)
        return h, self.out(self.drop(h))


@dataclass
class Teacher:
    """Frozen. Inputs to every method: backbone features (N, F), a pixel batch (N, 3, S, S) normalised by
    ``engine.preprocess``, or a list of PIL images."""

    mlp: _TeacherMLP
    feat_mean: Tensor
    feat_std: Tensor
    anchors: Tensor  # (K, H) unit vectors
    anchor_class: Tensor  # (K,) class index of each anchor
    temperature: float = 0.1
    spec: ImageSpec = field(default_factory=ImageSpec)
    backbone: nn.Module | None = None
    backbone_kind: str = PRETRAINED_BACKBONE
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mlp.eval()
        for p in self.mlp.parameters():
            p.requires_grad_(False)

    # -- features -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def backbone_features(self, images: Tensor | Sequence[Image.Image], batch_size: int = 64) -> Tensor:
        if self.backbone is None:
            raise RuntimeError("this teacher has no image backbone: pass backbone features instead")
        if not isinstance(images, Tensor):
            images = torch.from_numpy(images_to_batch(list(images), self.spec))
        self.backbone.eval()
        chunks = [self.backbone(images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)]
        return torch.cat(chunks) if chunks else torch.zeros(0, self.feat_mean.shape[0])

    def _as_backbone_features(self, x: Tensor | Sequence[Image.Image]) -> Tensor:
        if isinstance(x, Tensor) and x.dim() == 2:
            return x.float()
        return self.backbone_features(x)

    @torch.no_grad()
    def features(self, x: Tensor | Sequence[Image.Image]) -> Tensor:
        """The teacher's sticker features: L2-normalised hidden layer of its MLP, (N, H)."""
        f = (self._as_backbone_features(x) - self.feat_mean) / self.feat_std
        h, _ = self.mlp(f)
        return F.normalize(h, dim=-1)

    @torch.no_grad()
    def similarities(self, x: Tensor | Sequence[Image.Image]) -> Tensor:
        """(N, 7) cosine of each sticker's feature to the nearest anchor of each class."""
        h = self.features(x)
        sims = h @ self.anchors.T  # (N, K)
        out = torch.full((h.shape[0], NUM_EMOTIONS), ABSENT_SIMILARITY)
        for c in range(NUM_EMOTIONS):
            cols = self.anchor_class == c
            if bool(cols.any()):
                out[:, c] = sims[:, cols].max(dim=1).values
        return out

    @torch.no_grad()
    def distribution(self, x: Tensor | Sequence[Image.Image], temperature: float | None = None) -> Tensor:
        """softmax(similarities / T): the distillation target, (N, 7)."""
        t = self.temperature if temperature is None else temperature
        return (self.similarities(x) / t).softmax(dim=-1)

    @torch.no_grad()
    def predict_proba(self, x: Tensor | Sequence[Image.Image]) -> Tensor:
        """The MLP classifier's own probabilities (for checking the teacher, not for distillation)."""
        f = (self._as_backbone_features(x) - self.feat_mean) / self.feat_std
        return self.mlp(f)[1].softmax(dim=-1)

    # -- persistence ----------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Atomic write. A custom backbone is not saved: pass it again to ``load``."""
        path = Path(path)
        payload = {
            "format": TEACHER_FORMAT,
            "emotions": list(EMOTIONS),
            "in_dim": int(self.feat_mean.shape[0]),
            "hidden": int(self.mlp.out.in_features),
            "mlp": self.mlp.state_dict(),
            "feat_mean": self.feat_mean,
            "feat_std": self.feat_std,
            "anchors": self.anchors,
            "anchor_class": self.anchor_class,
            "temperature": self.temperature,
            "spec": self.spec.to_dict() | {"mean": list(self.spec.mean), "std": list(self.spec.std)},
            "backbone_kind": self.backbone_kind,
            "info": self.info,
        }
        payload["spec"]["background"] = list(self.spec.background)
        return atomic_torch_save(payload, path)

    @classmethod
    def load(cls, path: str | Path, backbone: nn.Module | None = None) -> Teacher:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        if payload.get("format") != TEACHER_FORMAT or tuple(payload["emotions"]) != EMOTIONS:
            raise ValueError(f"{path} is not a teacher of format {TEACHER_FORMAT} over {EMOTIONS}")
        mlp = _TeacherMLP(payload["in_dim"], payload["hidden"], NUM_EMOTIONS, 0.0)
        mlp.load_state_dict(payload["mlp"])
        spec = ImageSpec.from_dict(payload["spec"])
        kind = payload["backbone_kind"]
        if backbone is None and kind == PRETRAINED_BACKBONE:
            backbone = default_backbone(spec.size)
        return cls(
            mlp=mlp,
            feat_mean=payload["feat_mean"],
            feat_std=payload["feat_std"],
            anchors=payload["anchors"],
            anchor_class=payload["anchor_class"],
            temperature=float(payload["temperature"]),
            spec=spec,
            backbone=backbone,
            backbone_kind=kind,
            info=payload.get("info", {}),
        )


def fit_teacher(
    images: Sequence[Image.Image] | None,
    labels: Sequence[int],
    *,
    features: Tensor | None = None,
    backbone: nn.Module | None = None,
    spec: ImageSpec = ImageSpec(),
    hidden: int = 128,
    clusters_per_class: int = 3,
    temperature: float = 0.1,
    epochs: int = 300,
    lr: float = 3e-3,
    weight_decay: float = 1e-3,
    dropout: float = 0.2,
    seed: int = 0,
) -> Teacher:
    """Train the teacher on sticker images and their class indices (e.g. from ``label_emoji_emotion``).

    ``backbone``: any frozen module mapping a normalised pixel batch to (N, F) features (default: pretrained
    EfficientNet-Lite0). ``features``: precomputed backbone features instead of images. Deterministic for a seed.
    """
    kind = PRETRAINED_BACKBONE if backbone is None else "custom"
    if backbone is None and features is None:
        backbone = default_backbone(spec.size)
    x, y = _fit_inputs(images, labels, features, spec, backbone)
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp(min=1e-6)
    xs = (x - mean) / std
    counts = torch.bincount(y, minlength=NUM_EMOTIONS).float()
    mlp = _train_mlp(xs, y, counts, hidden, epochs, lr, weight_decay, dropout, seed)
    with torch.no_grad():
        h, logits = mlp(xs)
        h = F.normalize(h, dim=-1)
        correct = logits.argmax(-1) == y
    anchors, anchor_class = _class_anchors(h, y, correct, clusters_per_class, seed)
    info = {
        "train_accuracy": float(correct.float().mean()),
        "class_counts": [int(v) for v in counts.tolist()],
        "clusters_per_class": clusters_per_class,
    }
    return Teacher(
        mlp=mlp,
        feat_mean=mean,
        feat_std=std,
        anchors=anchors,
        anchor_class=anchor_class,
        temperature=temperature,
        spec=spec,
        backbone=backbone,
        backbone_kind=kind,
        info=info,
    )


def _fit_inputs(
    images: Sequence[Image.Image] | None,
    labels: Sequence[int],
    features: Tensor | None,
    spec: ImageSpec,
    backbone: nn.Module | None,
) -> tuple[Tensor, Tensor]:
    """The backbone features (given, else of ``images``) and the class indices to fit on, checked."""
    y = torch.as_tensor(list(labels), dtype=torch.long)
    if y.numel() == 0 or int(y.min()) < 0 or int(y.max()) >= NUM_EMOTIONS:
        raise ValueError(f"labels must be class indices in [0, {NUM_EMOTIONS})")
    # Built even when features are given: its placeholder MLP draws from the global RNG, and a run's random
    # stream after fitting stays what it has always been.
    shell = _backbone_only(spec, backbone)
    if features is None:
        if images is None:
            raise ValueError("give images or features")
        features = shell.backbone_features(list(images))
    x = features.detach().float()
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{x.shape[0]} samples but {y.shape[0]} labels")
    return x, y


def _backbone_only(spec: ImageSpec, backbone: nn.Module | None) -> Teacher:
    """A teacher with no trained parts: what computes backbone features before there is an MLP."""
    return Teacher(
        mlp=_TeacherMLP(1, 1, NUM_EMOTIONS, 0.0),
        feat_mean=torch.zeros(1),
        feat_std=torch.ones(1),
        anchors=torch.zeros(0, 1),
        anchor_class=torch.zeros(0, dtype=torch.long),
        spec=spec,
        backbone=backbone,
    )


def _train_mlp(
    xs: Tensor,
    y: Tensor,
    counts: Tensor,
    hidden: int,
    epochs: int,
    lr: float,
    weight_decay: float,
    dropout: float,
    seed: int,
) -> _TeacherMLP:
    """The MLP on standardised features, class-balanced cross-entropy, full batch; returned in eval mode."""
    class_weight = torch.where(counts > 0, counts.sum() / (counts.clamp(min=1) * (counts > 0).sum()), 0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mlp = _TeacherMLP(xs.shape[1], hidden, NUM_EMOTIONS, dropout)
        opt = torch.optim.AdamW(mlp.parameters(), lr=lr, weight_decay=weight_decay)
        mlp.train()
        for _ in range(epochs):  # full batch: a few thousand stickers at most
            opt.zero_grad()
            _, logits = mlp(xs)
            F.cross_entropy(logits, y, weight=class_weight).backward()
            opt.step()
    mlp.eval()
    return mlp


def _class_anchors(
    h: Tensor, y: Tensor, correct: Tensor, clusters_per_class: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Per class present, k-means centres of its correctly classified stickers' features (all if none is)."""
    from sklearn.cluster import KMeans

    anchors: list[Tensor] = []
    anchor_class: list[int] = []
    for c in range(NUM_EMOTIONS):
        members = y == c
        if not bool(members.any()):
            continue
        good = members & correct
        pts = h[good if bool(good.any()) else members].numpy().astype(np.float64)
        k = min(clusters_per_class, len(np.unique(pts.round(6), axis=0)))
        km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(pts)
        anchors.append(F.normalize(torch.from_numpy(km.cluster_centers_).float(), dim=-1))
        anchor_class += [c] * k
    return torch.cat(anchors), torch.tensor(anchor_class, dtype=torch.long)
