"""The exported model directory computes the same function as the PyTorch checkpoint, without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.preprocess import TextTokenizer, images_to_batch, sticker_text
from engine.ranking import PBRRanker, StickerInput, load_ranker
from export.pbr import export_pbr
from training.model import build_tiny_pbr, save_checkpoint

TEXTS = ["i finally passed the exam [SEP] no way, congrats!", "my cat is sick", "pizza tonight?"]


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    out = [Image.fromarray(rng.integers(0, 255, (40, 30, 4), dtype=np.uint8), "RGBA") for _ in range(3)]
    out.append(Image.new("RGB", (64, 64), (255, 200, 0)))
    return out


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    tmp = tmp_path_factory.mktemp("pbr")
    model = build_tiny_pbr(seed=3, use_sticker_text=True).eval()
    ckpt = save_checkpoint(tmp / "tiny.pt", model, extra={"val_metrics": {"R@1": 12.5}})
    export_pbr(ckpt, tmp / "model", quantize=False)
    return tmp / "model", model


def test_fp32_export_matches_pytorch(exported):
    model_dir, model = exported
    ranker = PBRRanker(model_dir)
    assert isinstance(load_ranker("auto", model_dir), PBRRanker)
    tok = TextTokenizer(model_dir / "tokenizer.json", model.config.max_tokens)
    enc = tok.encode(TEXTS)
    with torch.no_grad():
        want_d = model.encode_dialogue(
            torch.from_numpy(enc.input_ids),
            torch.from_numpy(enc.attention_mask),
            torch.from_numpy(enc.token_type_ids),
        ).numpy()
    got_d = ranker.embed_dialogues(TEXTS)
    assert _cos(got_d, want_d).min() >= 0.999

    images = _images()
    emojis = ["😂", "😢", None, "🔥"]
    pixels = torch.from_numpy(images_to_batch(images, model.config.image_spec()))
    stok = TextTokenizer(model_dir / "tokenizer.json", model.config.sticker_text_max_tokens)
    senc = stok.encode([sticker_text(e) for e in emojis])
    with torch.no_grad():
        want_s = model.encode_sticker(
            pixels,
            {
                "input_ids": torch.from_numpy(senc.input_ids),
                "attention_mask": torch.from_numpy(senc.attention_mask),
                "token_type_ids": torch.from_numpy(senc.token_type_ids),
            },
        ).numpy()
        want_img = model.encode_sticker(pixels).numpy()
        want_match = model.match_logits(torch.from_numpy(want_d[0]), torch.from_numpy(want_s)).numpy()
    got_s = ranker.embed_stickers([StickerInput(im, e) for im, e in zip(images, emojis, strict=True)])
    assert _cos(got_s, want_s).min() >= 0.999
    got_img, _ = ranker.embed_images(images)
    assert _cos(got_img, want_img).min() >= 0.999
    np.testing.assert_allclose(ranker.rerank_scores(got_d[0], got_s), want_match, atol=1e-3)


def test_manifest_records_versions_hashes_and_metrics(exported):
    model_dir, model = exported
    ranker = PBRRanker(model_dir)
    m = ranker.manifest
    assert m["kind"] == "pbr" and m["embedding_dim"] == model.config.embed_dim
    assert set(m["sha256"]) == set(m["files"].values())
    assert m["validation_metrics"] == {"R@1": 12.5}
    assert m["image"]["size"] == model.config.image_size
    assert m["version"].startswith("pbr-fp32-")


def test_serving_path_never_imports_torch(exported):
    model_dir, _ = exported
    code = (
        "import sys\n"
        "from engine.ranking import load_ranker, StickerInput\n"
        "import engine.service, bot.console, bot.cli, bot.telegram, bot.discord\n"
        "from PIL import Image\n"
        f"r = load_ranker('auto', {str(model_dir)!r})\n"
        "r.embed_dialogues(['hello there'])\n"
        "r.embed_stickers([StickerInput(Image.new('RGB', (20, 20)), '😂')])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'optimum', 'sklearn', 'onnx'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_verify_reports_parity_and_int8_drift(exported, tmp_path):
    from export.verify import verify

    model_dir, _model = exported
    report = verify(model_dir, model_dir.parent / "tiny.pt", n=8)
    assert report.ok and not report.quantized
    assert {t.name for t in report.towers} == {"dialogue tower", "sticker tower", "matching head"}
    assert min(t.min_cosine for t in report.towers) >= 0.999
    export_pbr(model_dir.parent / "tiny.pt", tmp_path / "int8", quantize=True)
    q = verify(tmp_path / "int8", model_dir.parent / "tiny.pt", n=8)
    assert q.quantized and q.ok  # int8 drift is reported, not failed
    drift = {t.name: t.min_cosine for t in q.towers}
    assert 0.5 < drift["dialogue tower"] <= 1.0
