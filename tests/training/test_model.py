from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from training.model import (
    EfficientNetTower,
    PBRConfig,
    build_pbr,
    build_tiny_pbr,
    load_checkpoint,
    save_checkpoint,
)

B, L, S = 4, 12, 32


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 2000, (B, L), generator=g)
    mask = torch.ones(B, L, dtype=torch.long)
    mask[0, 8:] = 0
    return ids, mask, torch.randn(B, 3, S, S, generator=g)


def test_forward_shapes_and_unit_norm() -> None:
    model = build_tiny_pbr()
    ids, mask, pixels = _batch()
    out = model(ids, mask, pixels)
    d = model.config.embed_dim
    assert out["dialogue"].shape == (B, d) and out["sticker"].shape == (B, d)
    assert out["emotion_logits"].shape == (B, 7)
    assert torch.allclose(out["dialogue"].norm(dim=-1), torch.ones(B), atol=1e-5)
    assert torch.allclose(out["sticker"].norm(dim=-1), torch.ones(B), atol=1e-5)
    assert model.match_logits(out["dialogue"], out["sticker"]).shape == (B,)
    # broadcasting: one dialogue against all stickers (re-ranking)
    assert model.match_logits(out["dialogue"][:1], out["sticker"]).shape == (B,)
    assert model.similarity(out["dialogue"], out["sticker"]).shape == (B, B)


def test_padding_does_not_change_the_dialogue_embedding() -> None:
    model = build_tiny_pbr().eval()
    ids, mask, _ = _batch()
    short = model.encode_dialogue(ids[:1, :8], mask[:1, :8])
    padded = model.encode_dialogue(ids[:1], mask[:1])
    assert torch.allclose(short, padded, atol=1e-5)


def test_freezing_sets_requires_grad_and_keeps_frozen_units_in_eval() -> None:
    model = build_tiny_pbr(text_trainable_layers=1, image_trainable_blocks=1)
    bert = model.text_tower.bert
    assert not any(p.requires_grad for p in bert.embeddings.parameters())
    assert not any(p.requires_grad for p in bert.encoder.layer[0].parameters())
    assert all(p.requires_grad for p in bert.encoder.layer[1].parameters())
    img = model.image_tower
    assert not any(p.requires_grad for p in img.stem.parameters())
    assert not any(p.requires_grad for b in img.blocks[:-1] for p in b.parameters())
    assert all(p.requires_grad for p in img.blocks[-1].parameters())
    assert all(p.requires_grad for p in img.head.parameters())
    for name in ("text_proj", "image_proj", "emotion_head", "match_head"):
        assert all(p.requires_grad for p in getattr(model, name).parameters())

    model.train()
    assert not img.stem.training and not bert.encoder.layer[0].training
    assert img.blocks[-1].training and bert.encoder.layer[1].training
    frozen_bn = img.stem[1].running_mean.clone()
    trained_bn = img.blocks[-1][1].running_mean.clone()
    ids, mask, pixels = _batch()
    model(ids, mask, pixels)
    assert torch.equal(img.stem[1].running_mean, frozen_bn)  # frozen BatchNorm keeps its statistics
    assert not torch.equal(img.blocks[-1][1].running_mean, trained_bn)


def test_gradients_reach_only_trainable_parameters() -> None:
    model = build_tiny_pbr(text_trainable_layers=1, image_trainable_blocks=1)
    ids, mask, pixels = _batch()
    out = model(ids, mask, pixels)
    loss = (
        (out["dialogue"] * out["sticker"]).sum() * out["logit_scale"]
        + out["emotion_logits"].pow(2).sum()
        + model.match_logits(out["dialogue"], out["sticker"]).sum()
    )
    loss.backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, name
        else:
            assert p.grad is None, name
    assert model.text_tower.bert.encoder.layer[1].attention.self.query.weight.grad.abs().sum() > 0


def test_all_and_none_frozen() -> None:
    everything = build_tiny_pbr(text_trainable_layers=-1, image_trainable_blocks=-1)
    assert all(p.requires_grad for p in everything.parameters())
    nothing = build_tiny_pbr(text_trainable_layers=0, image_trainable_blocks=0)
    assert not any(p.requires_grad for p in nothing.text_tower.parameters())
    assert not any(p.requires_grad for p in nothing.image_tower.parameters())
    assert all(p.requires_grad for p in nothing.text_proj.parameters())


def test_temperature_starts_at_007_and_is_clamped() -> None:
    model = build_tiny_pbr()
    assert model.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)  # e^10 ≫ 100
    assert model.scale().item() == pytest.approx(100.0, rel=1e-5)
    model.scale().backward()
    assert model.logit_scale.grad is not None and model.logit_scale.grad.item() == 0.0
    model.clamp_logit_scale_()
    assert model.logit_scale.item() == pytest.approx(math.log(100.0))
    with torch.no_grad():
        model.logit_scale.fill_(-3.0)
    assert model.scale().item() == pytest.approx(1.0)


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = build_tiny_pbr(use_sticker_text=True).eval()
    with torch.no_grad():
        model.logit_scale.fill_(3.0)
    ids, mask, pixels = _batch()
    text = {"input_ids": ids[:, :6], "attention_mask": mask[:, :6]}
    path = save_checkpoint(tmp_path / "ckpt" / "pbr.pt", model, model.config, {"step": 7, "note": "hi"})
    assert [p.name for p in path.parent.iterdir()] == ["pbr.pt"]  # no temp file left behind
    loaded = load_checkpoint(path)
    assert loaded.extra == {"step": 7, "note": "hi"}
    assert loaded.config == model.config
    assert loaded.meta["versions"]["torch"] == str(torch.__version__)
    m2 = loaded.model
    assert not m2.training
    with torch.no_grad():
        a_d, b_d = model.encode_dialogue(ids, mask), m2.encode_dialogue(ids, mask)
        a_s, b_s = model.encode_sticker(pixels, text), m2.encode_sticker(pixels, text)
        assert torch.equal(a_d, b_d) and torch.equal(a_s, b_s)
        assert torch.equal(model.match_logits(a_d, a_s), m2.match_logits(b_d, b_s))
        assert torch.equal(model.emotion_logits(a_s), m2.emotion_logits(b_s))
        assert torch.equal(model.scale(), m2.scale())
    # freezing comes back from the config
    assert [p.requires_grad for p in model.parameters()] == [p.requires_grad for p in m2.parameters()]


def test_sticker_text_fusion_is_gated_and_textless_rows_use_the_image() -> None:
    model = build_tiny_pbr(use_sticker_text=True, text_trainable_layers=-1).eval()
    ids, _, pixels = _batch()
    text_ids = ids[:, :5].clone()
    text_mask = torch.ones(B, 5, dtype=torch.long)
    text_mask[1, 2:] = 0  # row 1: only [CLS] [SEP] → no text
    fused = model.encode_sticker(pixels, {"input_ids": text_ids, "attention_mask": text_mask})
    image_only = model.encode_sticker(pixels)
    assert torch.allclose(fused[1], image_only[1], atol=1e-6)
    assert not torch.allclose(fused[0], image_only[0], atol=1e-4)
    forced = model.encode_sticker(
        pixels,
        {"input_ids": text_ids, "attention_mask": text_mask, "has_text": torch.tensor([0, 0, 0, 0]).bool()},
    )
    assert torch.allclose(forced, image_only, atol=1e-6)
    model.train()
    fused = model.encode_sticker(pixels, {"input_ids": text_ids, "attention_mask": text_mask})
    fused.sum().backward()
    assert model.text_gate.weight.grad is not None and model.sticker_text_proj.weight.grad is not None
    assert model.text_proj.weight.grad is None  # the dialogue projection is not used for sticker text


def test_no_fusion_parameters_without_sticker_text() -> None:
    model = build_tiny_pbr()
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert names == {
        "text_tower",
        "image_tower",
        "text_proj",
        "image_proj",
        "emotion_head",
        "match_head",
        "logit_scale",
    }


def test_config_round_trip_and_validation() -> None:
    cfg = PBRConfig(use_sticker_text=True, text_trainable_layers=3)
    assert PBRConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.image_size == 128 and cfg.embed_dim == 256
    assert cfg.emotions == ("surprise", "happiness", "disgust", "fear", "sadness", "anger", "neutral")
    with pytest.raises(ValueError):
        PBRConfig(emotions=("happiness", "surprise", "disgust", "fear", "sadness", "anger", "neutral"))
    with pytest.raises(ValueError):
        PBRConfig(temperature_init=0.001)
    with pytest.raises(ValueError):
        PBRConfig.from_dict({"nope": 1})


def test_efficientnet_tower_architecture_freezing_and_activation() -> None:
    from efficientnet_lite_pytorch.utils import MemoryEfficientSwish, Swish

    tower = EfficientNetTower(64, pretrained=False)
    assert tower.num_blocks == 16 and tower.out_dim == 1280
    tower.freeze(2)
    trainable = {n.split(".")[1] + ("." + n.split(".")[2] if n.split(".")[1] == "_blocks" else "")
                 for n, p in tower.named_parameters() if p.requires_grad}  # fmt: skip
    assert trainable == {"_blocks.14", "_blocks.15", "_conv_head", "_bn1"}
    # Lite0 keeps its ReLU6 (set_swish would have replaced it by Swish) and has nothing un-exportable
    acts = [m for m in tower.modules() if isinstance(m, MemoryEfficientSwish | Swish)]
    assert acts == [] and any(isinstance(m, torch.nn.ReLU6) for m in tower.modules())
    tower.eval()
    with torch.no_grad():
        assert tower(torch.randn(2, 3, 64, 64)).shape == (2, 1280)


@pytest.mark.slow
def test_real_towers_load_offline_encode_and_round_trip(tmp_path: Path) -> None:
    from PIL import Image

    from engine.preprocess import ImageSpec, TextTokenizer, images_to_batch
    from training.model import default_text_dir

    model = build_pbr(PBRConfig()).eval()
    cfg = model.config
    assert cfg.text_config is not None and cfg.text_config["hidden_size"] == 384
    tok = TextTokenizer(default_text_dir() / "tokenizer.json", max_tokens=cfg.max_tokens)
    enc = tok.encode(["I love my dog", "my puppy is adorable", "the stock market crashed today"])
    ids, mask = torch.from_numpy(enc.input_ids), torch.from_numpy(enc.attention_mask)
    with torch.no_grad():
        pooled = torch.nn.functional.normalize(model.text_tower(ids, mask), dim=-1)
        emb = model.encode_dialogue(ids, mask)
        spec = ImageSpec()
        imgs = [Image.new("RGB", (64, 40), c) for c in ("red", "blue")]
        pixels = torch.from_numpy(images_to_batch(imgs, spec))
        sticker = model.encode_sticker(pixels)
    sims = pooled @ pooled.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # pretrained MiniLM semantics are there
    assert emb.shape == (3, 256) and sticker.shape == (2, 256)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 0 < n_train < sum(p.numel() for p in model.parameters()) / 2
    loaded = load_checkpoint(save_checkpoint(tmp_path / "real.pt", model)).model
    with torch.no_grad():
        assert torch.allclose(loaded.encode_dialogue(ids, mask), emb, atol=1e-6)
        assert torch.allclose(loaded.encode_sticker(pixels), sticker, atol=1e-6)
