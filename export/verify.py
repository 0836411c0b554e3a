"""Does an exported model directory compute the same function as its PyTorch checkpoint?

Compares every tower on random inputs and on real ones (dialogues of a dataset, sticker images), reports cosine
similarity to PyTorch (fp32 export: must be ≥ 0.999) and, for an int8 export, the drift; with a dataset it also
measures the validation metrics of the int8 and fp32 exports side by side.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from engine.preprocess import TextTokenizer, images_to_batch, sticker_text
from engine.ranking import PBRRanker, StickerInput
from training.model import PBRModel, load_checkpoint

FP32_MIN_COSINE = 0.999


@dataclass
class TowerParity:
    name: str
    inputs: str
    min_cosine: float
    mean_cosine: float
    max_abs_diff: float


@dataclass
class VerifyReport:
    model_dir: str
    quantized: bool
    towers: list[TowerParity] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.quantized or all(t.min_cosine >= FP32_MIN_COSINE for t in self.towers)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_dir": self.model_dir,
            "quantized": self.quantized,
            "ok": self.ok,
            "towers": [t.__dict__ for t in self.towers],
            "metrics": self.metrics,
        }


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def _parity(name: str, inputs: str, got: np.ndarray, want: np.ndarray) -> TowerParity:
    """Vectors: cosine per row. Scalar outputs (matching logits): cosine of the whole batch's logit vector."""
    cos = _cos(got[None, :], want[None, :]) if got.ndim == 1 else _cos(got, want)
    return TowerParity(name, inputs, float(cos.min()), float(cos.mean()), float(np.abs(got - want).max()))


def _random_texts(tok: TextTokenizer, n: int, rng: np.random.Generator) -> list[str]:
    vocab = [w for w in tok._tok.get_vocab() if w.isalpha() and len(w) > 2]
    vocab.sort()
    return [" ".join(rng.choice(vocab, size=int(rng.integers(3, 40)))) for _ in range(n)]


def _random_images(n: int, rng: np.random.Generator) -> list[Image.Image]:
    return [
        Image.fromarray(
            rng.integers(0, 255, (int(rng.integers(16, 300)), int(rng.integers(16, 300)), 4), np.uint8)
        )
        for _ in range(n)
    ]


def _torch_dialogues(model: PBRModel, tok: TextTokenizer, texts: list[str]) -> np.ndarray:
    enc = tok.encode(texts)
    with torch.no_grad():
        return model.encode_dialogue(
            torch.from_numpy(enc.input_ids),
            torch.from_numpy(enc.attention_mask),
            torch.from_numpy(enc.token_type_ids),
        ).numpy()


def _torch_stickers(
    model: PBRModel, tok: TextTokenizer, images: list, emojis: list[str | None]
) -> np.ndarray:
    pixels = torch.from_numpy(images_to_batch(images, model.config.image_spec()))
    text_inputs = None
    if model.config.use_sticker_text:
        enc = tok.encode([sticker_text(e) for e in emojis], model.config.sticker_text_max_tokens)
        text_inputs = {
            "input_ids": torch.from_numpy(enc.input_ids),
            "attention_mask": torch.from_numpy(enc.attention_mask),
            "token_type_ids": torch.from_numpy(enc.token_type_ids),
        }
    with torch.no_grad():
        return model.encode_sticker(pixels, text_inputs).numpy()


def compare(
    model_dir: Path, model: PBRModel, texts: list[str], images: list, emojis: list[str | None], label: str
) -> list[TowerParity]:
    ranker = PBRRanker(model_dir)
    tok = TextTokenizer(Path(model_dir) / "tokenizer.json", model.config.max_tokens)
    want_d = _torch_dialogues(model, tok, texts)
    got_d = ranker.embed_dialogues(texts)
    want_s = _torch_stickers(model, tok, images, emojis)
    got_s = ranker.embed_stickers([StickerInput(im, e) for im, e in zip(images, emojis, strict=True)])
    with torch.no_grad():
        want_m = model.match_logits(torch.from_numpy(want_d[:1]), torch.from_numpy(want_s)).numpy()
    got_m = ranker.rerank_scores(got_d[0], got_s)
    return [
        _parity("dialogue tower", label, got_d, want_d),
        _parity("sticker tower", label, got_s, want_s),
        _parity("matching head", label, got_m, want_m),
    ]


def verify(
    model_dir: Path,
    checkpoint: Path,
    dataset: Path | None = None,
    split: str = "val",
    max_samples: int = 1000,
    n: int = 32,
    seed: int = 0,
) -> VerifyReport:
    import json

    manifest = json.loads((Path(model_dir) / "manifest.json").read_text())
    quantized = bool((manifest.get("quantized") or {}).get("text"))
    model = load_checkpoint(checkpoint).model.eval()
    rng = np.random.default_rng(seed)
    tok = TextTokenizer(Path(model_dir) / "tokenizer.json", model.config.max_tokens)
    report = VerifyReport(str(model_dir), quantized)
    emojis = [None, "😂", "😢", "🔥", "❤️", "😡", "😮", "🤢"] * (n // 8 + 1)
    report.towers += compare(
        model_dir, model, _random_texts(tok, n, rng), _random_images(n, rng), emojis[:n], "random"
    )
    if dataset is not None:
        from training.data.format import StickerDataset, load_sticker_image

        ds = StickerDataset.open(dataset)
        samples = ds.load(split)[:n]
        texts = [model_dialogue_text(s) for s in samples]
        ids = sorted({s.current.sticker_id for s in samples})[:n]
        images = [load_sticker_image(ds.index.find(i)) for i in ids]
        alts = [ds.index.alt(i) for i in ids]
        report.towers += compare(model_dir, model, texts, images, alts, f"real ({Path(dataset).name})")
        report.metrics = _metric_change(model_dir, checkpoint, ds, split, max_samples, quantized)
    return report


def model_dialogue_text(sample: Any) -> str:
    from engine.preprocess import dialogue_to_text

    return dialogue_to_text([t.text for t in sample.context])


def _metric_change(model_dir: Path, checkpoint: Path, ds: Any, split: str, max_samples: int, quantized: bool):
    from engine.ranking import load_ranker
    from export.pbr import export_pbr
    from training.evaluate import EngineScorer, evaluate

    out: dict[str, dict[str, float]] = {}
    keys = ("R@1", "MRR", "macro_F1", "weighted_F1")
    served = evaluate(ds, split, EngineScorer(load_ranker("auto", model_dir)), max_samples=max_samples)
    out["int8" if quantized else "fp32"] = {k: served[k] for k in keys}
    if quantized:
        with tempfile.TemporaryDirectory() as tmp:
            export_pbr(checkpoint, Path(tmp) / "fp32", quantize=False)
            fp32 = evaluate(
                ds, split, EngineScorer(load_ranker("auto", Path(tmp) / "fp32")), max_samples=max_samples
            )
        out["fp32"] = {k: fp32[k] for k in keys}
        out["int8 − fp32"] = {k: out["int8"][k] - out["fp32"][k] for k in keys}
    return out
