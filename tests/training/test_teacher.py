from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from engine.preprocess import ImageSpec, images_to_batch
from training.emotion_labels import (
    GOEMOTION_TO_CLASS,
    GOEMOTIONS_EKMAN,
    emoji_emotion_name,
    explain_emoji_emotion,
    label_emoji_emotion,
)
from training.emotions import EMOTION_INDEX, EMOTIONS
from training.losses import EmotionKDLoss
from training.model import TinyConvTower
from training.teacher import Teacher, fit_teacher

SHARED_GOEMOTIONS = Path(__file__).resolve().parents[3] / "shared" / "data" / "goemotions"


@pytest.mark.parametrize(
    ("emoji_char", "expected"),
    [
        ("😂", "happiness"),
        ("😊", "happiness"),  # alias "blush" would say embarrassment → sadness: the table decides
        ("🥲", "happiness"),
        ("😭", "sadness"),
        ("😡", "anger"),
        ("🤮", "disgust"),
        ("😱", "fear"),
        ("😮", "surprise"),
        ("😐", "neutral"),
        ("❤️", "happiness"),  # keywords: heart → love → joy
        ("❤", "happiness"),
        ("💔", "sadness"),  # the phrase "broken heart" wins over "heart"
        ("👍", "happiness"),  # thumbs up → approval → joy
        ("👍🏽", "happiness"),  # skin tone ignored
        ("👎", "anger"),  # thumbs down → disapproval → anger
        ("🙏", "happiness"),  # folded hands → gratitude → joy
        ("🤞", "happiness"),  # crossed fingers → optimism → joy
        ("😿", "sadness"),
        ("🍕", "neutral"),  # unknown → neutral
        ("", "neutral"),
        (None, "neutral"),
    ],
)
def test_emoji_labels(emoji_char: str | None, expected: str) -> None:
    assert emoji_emotion_name(emoji_char) == expected
    assert label_emoji_emotion(emoji_char) == EMOTION_INDEX[expected]


def test_label_sources_are_explained() -> None:
    assert explain_emoji_emotion("😂")[1] == "table"
    idx, source = explain_emoji_emotion("💔")
    assert idx == EMOTION_INDEX["sadness"]
    assert source.startswith("keywords:") and "sadness" in source
    assert explain_emoji_emotion("🍕") == (EMOTION_INDEX["neutral"], "default")


def test_goemotions_mapping_covers_27_emotions_plus_neutral() -> None:
    assert len(GOEMOTION_TO_CLASS) == 28
    assert GOEMOTION_TO_CLASS["joy"] == EMOTION_INDEX["happiness"]
    assert GOEMOTION_TO_CLASS["neutral"] == EMOTION_INDEX["neutral"]
    assert set(EMOTIONS) == {"happiness" if c == "joy" else c for c in GOEMOTIONS_EKMAN} | {"neutral"}


@pytest.mark.data
def test_goemotions_mapping_is_the_published_one() -> None:
    names = (SHARED_GOEMOTIONS / "emotions.txt").read_text().split()
    assert sorted(names) == sorted(GOEMOTION_TO_CLASS)
    published = json.loads((SHARED_GOEMOTIONS / "ekman_mapping.json").read_text())
    assert {k: sorted(v) for k, v in published.items()} == {k: sorted(v) for k, v in GOEMOTIONS_EKMAN.items()}


def _clusters(seed: int = 0) -> tuple[torch.Tensor, list[int]]:
    g = torch.Generator().manual_seed(seed)
    classes = [EMOTION_INDEX[c] for c in ("happiness", "sadness", "anger")]
    centres = torch.randn(3, 24, generator=g) * 4
    feats, labels = [], []
    for k, c in enumerate(classes):
        feats.append(centres[k] + torch.randn(20, 24, generator=g))
        labels += [c] * 20
    return torch.cat(feats), labels


def test_fit_teacher_on_features_gives_peaked_distributions_and_zero_for_absent_classes() -> None:
    feats, labels = _clusters()
    teacher = fit_teacher(None, labels, features=feats, epochs=100, clusters_per_class=2)
    probs = teacher.distribution(feats)
    assert probs.shape == (60, 7)
    assert torch.allclose(probs.sum(-1), torch.ones(60), atol=1e-5)
    assert (probs.argmax(-1) == torch.tensor(labels)).float().mean() > 0.95
    absent = [EMOTION_INDEX[c] for c in ("surprise", "disgust", "fear", "neutral")]
    assert probs[:, absent].max() == 0.0
    assert teacher.anchors.shape == (6, 128) and sorted(set(teacher.anchor_class.tolist())) == sorted(
        set(labels)
    )
    assert torch.allclose(teacher.anchors.norm(dim=-1), torch.ones(6), atol=1e-5)
    assert teacher.info["class_counts"][EMOTION_INDEX["happiness"]] == 20
    # sharper with a lower temperature
    assert teacher.distribution(feats, temperature=0.01).max(-1).values.mean() > probs.max(-1).values.mean()
    # deterministic for a seed
    again = fit_teacher(None, labels, features=feats, epochs=100, clusters_per_class=2)
    assert torch.equal(again.distribution(feats), probs)
    # the distillation loss takes it directly, and is 0 when the student copies it
    loss, _ = EmotionKDLoss()(torch.log(probs.clamp(min=1e-30)), teacher_probs=probs)
    assert abs(loss.item()) < 1e-4


def _coloured(n: int) -> tuple[list[Image.Image], list[int]]:
    colours = {"happiness": (250, 220, 40), "sadness": (40, 60, 230), "anger": (230, 30, 30)}
    images, labels = [], []
    for i in range(n):
        name = list(colours)[i % 3]
        r, g, b = colours[name]
        jitter = (i * 7) % 25
        img = Image.new("RGBA", (40 + i % 5, 36), (0, 0, 0, 0))
        img.paste((max(r - jitter, 0), max(g - jitter, 0), max(b - jitter, 0), 255), (4, 4, 34, 32))
        images.append(img)
        labels.append(EMOTION_INDEX[name])
    return images, labels


def test_fit_teacher_on_images_and_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    backbone = TinyConvTower(width=8).eval()
    spec = ImageSpec(size=32)
    images, labels = _coloured(24)
    teacher = fit_teacher(images, labels, backbone=backbone, spec=spec, epochs=80, hidden=32)
    probs = teacher.distribution(images)
    assert (probs.argmax(-1) == torch.tensor(labels)).float().mean() > 0.9
    pixels = torch.from_numpy(images_to_batch(images, spec))
    assert torch.allclose(teacher.distribution(pixels), probs, atol=1e-6)
    assert teacher.predict_proba(images).shape == (24, 7)

    path = teacher.save(tmp_path / "teacher.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["teacher.pt"]
    loaded = Teacher.load(path, backbone=backbone)
    assert loaded.backbone_kind == "custom" and loaded.spec == spec
    assert torch.equal(loaded.distribution(images), probs)
    features_only = Teacher.load(path)  # custom backbone not saved: features still work
    feats = teacher.backbone_features(images)
    assert torch.equal(features_only.distribution(feats), probs)
    with pytest.raises(RuntimeError):
        features_only.distribution(images)


def test_fit_teacher_rejects_bad_labels() -> None:
    feats, _ = _clusters()
    with pytest.raises(ValueError):
        fit_teacher(None, [7] * 60, features=feats)
    with pytest.raises(ValueError):
        fit_teacher(None, [0] * 59, features=feats)
