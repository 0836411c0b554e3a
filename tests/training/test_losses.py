from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.preprocess import ImageSpec
from training.augment import AugmentConfig, augment_images
from training.losses import (
    ContrastiveLoss,
    EmotionKDLoss,
    InterTopicLoss,
    IntraTopicLoss,
    MatchingLoss,
)
from training.model import build_tiny_pbr


def _lse(*xs: float) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


# --- contrastive -------------------------------------------------------------------------------------------


def test_contrastive_aligned_embeddings_give_near_zero_loss() -> None:
    e = torch.eye(4)
    loss, logs = ContrastiveLoss()(e, e, torch.tensor(100.0))
    assert loss.item() < 1e-6
    assert logs["contrastive/acc_t2i"] == 1.0 and logs["contrastive/acc_i2t"] == 1.0


def test_contrastive_matches_hand_computed_2x2() -> None:
    d = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    s = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # logits = 10 * d @ s.T = [[10, 6], [0, 8]]
    t2i = ((_lse(10, 6) - 10) + (_lse(0, 8) - 8)) / 2
    i2t = ((_lse(10, 0) - 10) + (_lse(6, 8) - 8)) / 2
    loss, logs = ContrastiveLoss(weight=2.0)(d, s, torch.tensor(10.0))
    assert logs["contrastive/t2i"] == pytest.approx(t2i, rel=1e-5)
    assert logs["contrastive/i2t"] == pytest.approx(i2t, rel=1e-5)
    assert logs["contrastive"] == pytest.approx((t2i + i2t) / 2, rel=1e-5)
    assert loss.item() == pytest.approx(t2i + i2t, rel=1e-5)  # weight 2


def test_contrastive_masks_duplicate_stickers_instead_of_treating_them_as_negatives() -> None:
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    emb = torch.stack([e0, e0, e1])
    naive, _ = ContrastiveLoss()(emb, emb, torch.tensor(100.0))
    assert naive.item() == pytest.approx(2 / 3 * math.log(2), rel=1e-3)  # the copy is a "negative"
    masked, logs = ContrastiveLoss()(emb, emb, torch.tensor(100.0), sticker_ids=["a", "a", "b"])
    assert masked.item() < 1e-6
    assert logs["contrastive/masked_duplicates"] == 2
    by_dialogue, _ = ContrastiveLoss()(emb, emb, torch.tensor(100.0), dialogue_ids=torch.tensor([5, 5, 6]))
    assert by_dialogue.item() < 1e-6


def test_contrastive_gradients_reach_both_sides_and_the_scale() -> None:
    g = torch.Generator().manual_seed(0)
    d = F.normalize(torch.randn(5, 8, generator=g), dim=-1).requires_grad_()
    s = F.normalize(torch.randn(5, 8, generator=g), dim=-1).requires_grad_()
    log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    loss, _ = ContrastiveLoss()(d, s, log_scale.exp())
    loss.backward()
    assert d.grad is not None and s.grad is not None and log_scale.grad is not None
    assert d.grad.abs().sum() > 0 and s.grad.abs().sum() > 0 and log_scale.grad.abs() > 0


def test_disabled_losses_give_zero_without_grad() -> None:
    x = torch.randn(4, 8, requires_grad=True)
    logits = torch.randn(4, 7, requires_grad=True)
    cases = [
        ContrastiveLoss(enabled=False)(x, x, torch.tensor(10.0)),
        InterTopicLoss(enabled=False)(x, [0, 0, 1, 1]),
        IntraTopicLoss(enabled=False)(x, x, [0, 0, 1, 1]),
        EmotionKDLoss(enabled=False)(logits, teacher_probs=torch.full((4, 7), 1 / 7)),
        MatchingLoss(enabled=False)(x[:, 0], x[:, 1]),
        ContrastiveLoss(weight=0.0)(x, x, torch.tensor(10.0)),
    ]
    for loss, logs in cases:
        assert loss.item() == 0.0 and not loss.requires_grad and loss.dim() == 0
        assert logs == {}


# --- topic -------------------------------------------------------------------------------------------------


def test_inter_topic_clustered_topics_give_near_zero_loss() -> None:
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    emb = torch.stack([e0, e0, e1, e1])
    loss, logs = InterTopicLoss(temperature=0.01)(emb, ["cats", "cats", "dogs", "dogs"])
    assert loss.item() < 1e-6 and logs["inter_topic/anchors"] == 4
    mixed, _ = InterTopicLoss(temperature=0.01)(emb, ["cats", "dogs", "cats", "dogs"])
    assert mixed.item() > 10


def test_inter_topic_matches_hand_computed_and_skips_lonely_anchors() -> None:
    emb = F.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]), dim=-1)
    tau = 0.5
    sims = (emb @ emb.T / tau).tolist()
    # topics: 0, 0, 1 → anchors 0 and 1 (sticker 2 has no same-topic partner)
    l0 = _lse(sims[0][1], sims[0][2]) - sims[0][1]
    l1 = _lse(sims[1][0], sims[1][2]) - sims[1][0]
    loss, logs = InterTopicLoss(temperature=tau)(emb, [0, 0, 1])
    assert loss.item() == pytest.approx((l0 + l1) / 2, rel=1e-5)
    assert logs["inter_topic/anchors"] == 2
    x = emb.clone().requires_grad_()
    lonely, _ = InterTopicLoss()(x, [0, 1, 2])
    lonely.backward()
    assert lonely.item() == 0.0 and x.grad is not None and x.grad.abs().sum() == 0


def test_intra_topic_matches_hand_computed() -> None:
    g = torch.Generator().manual_seed(1)
    v1 = F.normalize(torch.randn(2, 4, generator=g), dim=-1)
    v2 = F.normalize(torch.randn(2, 4, generator=g), dim=-1)
    tau = 0.2
    z = torch.cat([v1, v2])
    s = (z @ z.T / tau).tolist()
    # same topic: anchor a (index in z) has positive its other view, negatives the other sticker's two views
    expected = []
    for a, pos, negs in [(0, 2, (1, 3)), (1, 3, (0, 2)), (2, 0, (1, 3)), (3, 1, (0, 2))]:
        expected.append(_lse(s[a][pos], *(s[a][n] for n in negs)) - s[a][pos])
    loss, logs = IntraTopicLoss(temperature=tau)(v1, v2, ["set", "set"])
    assert loss.item() == pytest.approx(float(np.mean(expected)), rel=1e-5)
    assert logs["intra_topic/anchors"] == 4


def test_intra_topic_negatives_come_only_from_the_same_topic() -> None:
    g = torch.Generator().manual_seed(2)
    v1 = F.normalize(torch.randn(3, 6, generator=g), dim=-1)
    v2 = F.normalize(torch.randn(3, 6, generator=g), dim=-1)
    base, _ = IntraTopicLoss()(v1[:2], v2[:2], ["a", "a"])
    # add a sticker of another topic, identical to sticker 0: nothing changes (it is alone in its topic: skipped)
    w1 = torch.cat([v1[:2], v1[:1]])
    w2 = torch.cat([v2[:2], v2[:1]])
    same, logs = IntraTopicLoss()(w1, w2, ["a", "a", "b"])
    assert same.item() == pytest.approx(base.item(), rel=1e-6)
    assert logs["intra_topic/anchors"] == 4
    # the same sticker id twice in a topic is neither positive nor negative (loop reference below)
    dup, logs = IntraTopicLoss(temperature=0.1)(w1, w2, ["a", "a", "a"], sticker_ids=["x", "y", "x"])
    z = torch.cat([w1, w2])
    sid = ["x", "y", "x"] * 2
    ref = []
    for a in range(6):
        pos = (a + 3) % 6
        negs = [j for j in range(6) if sid[j] != sid[a]]
        sims = [float(z[a] @ z[j]) / 0.1 for j in (pos, *negs)]
        ref.append(_lse(*sims) - sims[0])
    assert dup.item() == pytest.approx(float(np.mean(ref)), rel=1e-5)
    assert logs["intra_topic/anchors"] == 6
    twins, logs = IntraTopicLoss()(v1[:2], v2[:2], ["a", "a"], sticker_ids=["x", "x"])
    assert twins.item() == 0.0 and logs["intra_topic/anchors"] == 0


def test_intra_topic_aligned_distinct_views_give_near_zero_loss() -> None:
    e = torch.eye(3)
    loss, _ = IntraTopicLoss(temperature=0.01)(e, e, [0, 0, 0])
    assert loss.item() < 1e-6


# --- emotion KD --------------------------------------------------------------------------------------------


def test_kd_of_equal_distributions_is_zero() -> None:
    g = torch.Generator().manual_seed(0)
    sims = torch.rand(5, 7, generator=g) * 2 - 1
    kd = EmotionKDLoss(temperature=0.1)
    loss, _ = kd(sims / 0.1, teacher_sims=sims)
    assert abs(loss.item()) < 1e-6
    probs = kd.teacher_distribution(sims)
    loss2, logs = kd(probs.log(), teacher_probs=probs)
    assert abs(loss2.item()) < 1e-6 and logs["emotion_kd/agree"] == 1.0


def test_kd_matches_hand_computed_kl_and_handles_zero_teacher_mass() -> None:
    p = torch.tensor([[0.5, 0.5, 0, 0, 0, 0, 0]])
    student = torch.zeros(1, 7)  # uniform
    expected = 0.5 * math.log(0.5 * 7) * 2  # Σ p log(p / (1/7))
    loss, _ = EmotionKDLoss()(student, teacher_probs=p)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    st, _ = EmotionKDLoss(student_temperature=2.0)(student, teacher_probs=p)
    assert st.item() == pytest.approx(4 * expected, rel=1e-5)


def test_kd_gradients_go_to_the_student_only_and_valid_mask() -> None:
    logits = torch.randn(3, 7, requires_grad=True)
    sims = torch.randn(3, 7, requires_grad=True)
    loss, _ = EmotionKDLoss()(logits, teacher_sims=sims)
    loss.backward()
    assert logits.grad is not None and sims.grad is None
    probs = torch.softmax(torch.randn(3, 7), -1)
    masked, _ = EmotionKDLoss()(logits, teacher_probs=probs, valid=torch.tensor([True, False, False]))
    first, _ = EmotionKDLoss()(logits[:1], teacher_probs=probs[:1])
    assert masked.item() == pytest.approx(first.item(), rel=1e-6)
    with pytest.raises(ValueError):
        EmotionKDLoss()(logits)


# --- matching ----------------------------------------------------------------------------------------------


def test_matching_bce_known_values() -> None:
    loss, logs = MatchingLoss()(torch.zeros(2), torch.zeros(6))
    assert loss.item() == pytest.approx(math.log(2), rel=1e-6)
    pos, neg = torch.tensor([2.0]), torch.tensor([-1.0, 3.0])
    bce_pos = math.log1p(math.exp(-2.0))
    bce_neg = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(3.0))) / 2
    balanced, logs = MatchingLoss()(pos, neg)
    assert balanced.item() == pytest.approx((bce_pos + bce_neg) / 2, rel=1e-6)
    assert logs["matching/pos_acc"] == 1.0 and logs["matching/neg_acc"] == 0.5
    flat, _ = MatchingLoss(balanced=False)(pos, neg)
    assert flat.item() == pytest.approx((bce_pos + 2 * bce_neg) / 3, rel=1e-6)
    only_pos, _ = MatchingLoss()(pos, torch.zeros(0))
    assert only_pos.item() == pytest.approx(bce_pos, rel=1e-6)


# --- on the model: gradients reach the right parameters ----------------------------------------------------


def _grads(model: torch.nn.Module) -> set[str]:
    return {
        n.split(".")[0] for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0
    }


def _tiny_batch(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1000, 3000, (6, 10), generator=g)
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "pixels": torch.randn(6, 3, 32, 32, generator=g),
    }


def test_each_loss_trains_its_own_part_of_the_model() -> None:
    model = build_tiny_pbr()
    out = model(**_tiny_batch(model))
    ContrastiveLoss()(out["dialogue"], out["sticker"], out["logit_scale"])[0].backward()
    assert _grads(model) == {"text_tower", "text_proj", "image_tower", "image_proj", "logit_scale"}

    model.zero_grad(set_to_none=True)
    out = model(**_tiny_batch(model))
    teacher = torch.softmax(torch.randn(6, 7), -1)
    EmotionKDLoss()(out["emotion_logits"], teacher_probs=teacher)[0].backward()
    assert _grads(model) == {"emotion_head", "image_tower", "image_proj"}

    model.zero_grad(set_to_none=True)
    out = model(**_tiny_batch(model))
    pos = model.match_logits(out["dialogue"], out["sticker"])
    neg = model.match_logits(out["dialogue"], out["sticker"].roll(1, 0))
    MatchingLoss()(pos, neg)[0].backward()
    assert _grads(model) == {"match_head", "text_tower", "text_proj", "image_tower", "image_proj"}

    model.zero_grad(set_to_none=True)
    batch = _tiny_batch(model)
    v1 = model.encode_sticker(augment_images(batch["pixels"], generator=torch.Generator().manual_seed(0)))
    v2 = model.encode_sticker(augment_images(batch["pixels"], generator=torch.Generator().manual_seed(1)))
    topics = [0, 0, 0, 1, 1, 1]
    (
        InterTopicLoss()(torch.cat([v1, v2]), topics + topics)[0] + IntraTopicLoss()(v1, v2, topics)[0]
    ).backward()
    assert _grads(model) == {"image_tower", "image_proj"}


# --- augmentation ------------------------------------------------------------------------------------------


def test_augment_shapes_determinism_and_white_background() -> None:
    spec = ImageSpec(size=32)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    a = augment_images(x, spec=spec, generator=torch.Generator().manual_seed(5))
    b = augment_images(x, spec=spec, generator=torch.Generator().manual_seed(5))
    c = augment_images(x, spec=spec, generator=torch.Generator().manual_seed(6))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.allclose(a, c)
    assert a.min() >= -1 - 1e-5 and a.max() <= 1 + 1e-5
    white = torch.ones(2, 3, 32, 32)  # white in [-1, 1] normalisation; rotation/crop fill is white too
    out = augment_images(white, AugmentConfig(brightness=0, contrast=0, saturation=0), spec=spec)
    assert torch.allclose(out, white, atol=1e-5)
    ident = AugmentConfig(scale=(1, 1), ratio=(1, 1), flip_p=0, max_rotation_deg=0, brightness=0, contrast=0,
                          saturation=0)  # fmt: skip
    assert torch.allclose(augment_images(x, ident, spec=spec), x, atol=1e-5)
    flip = AugmentConfig(scale=(1, 1), ratio=(1, 1), flip_p=1, max_rotation_deg=0, brightness=0, contrast=0,
                         saturation=0)  # fmt: skip
    assert torch.allclose(augment_images(x, flip, spec=spec), x.flip(-1), atol=1e-5)
