"""Averaging two towers of one graph (export/average.py): the ends are the two towers, the middle lies between
them, and the directory keeps every other file with new hashes and a new version."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.preprocess import TextTokenizer
from engine.ranking import PBRRanker, read_manifest
from engine.ranking._onnx import make_session
from export.average import average_graphs, average_model_dir
from export.pbr import export_pbr
from export.text_opt import NotConvertible
from training.model import build_tiny_pbr, save_checkpoint

TEXTS = ["i finally passed the exam [SEP] no way, congrats!", "my cat is sick", "pizza tonight? [SEP] yes!!"]


def _pooled(path: Path, tokenizer: Path) -> np.ndarray:
    sess = make_session(path)
    enc = TextTokenizer(tokenizer, 64).encode(TEXTS)
    (out,) = sess.run(["last_hidden_state"], enc.as_feed([i.name for i in sess.get_inputs()]))
    mask = enc.attention_mask[..., None]
    return (out * mask).sum(1) / mask.sum(1)


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny int8 models of one architecture whose text towers differ (two seeds)."""
    tmp = tmp_path_factory.mktemp("average")
    for name, seed in (("a", 1), ("b", 2)):
        ckpt = save_checkpoint(tmp / f"{name}.pt", build_tiny_pbr(seed=seed, use_sticker_text=True).eval())
        export_pbr(ckpt, tmp / name, quantize=True)
    return {"a": tmp / "a", "b": tmp / "b", "tmp": tmp}


def test_the_ends_are_the_two_towers_and_the_middle_lies_between(two: dict[str, Path]) -> None:
    tok = two["a"] / "tokenizer.json"
    a, b = _pooled(two["a"] / "text.onnx", tok), _pooled(two["b"] / "text.onnx", tok)
    ends = {}
    for alpha in (0.0, 0.5, 1.0):
        out = two["tmp"] / f"avg-{alpha}.onnx"
        assert average_graphs(two["a"] / "text.onnx", two["b"] / "text.onnx", out, alpha) > 0
        ends[alpha] = _pooled(out, tok)
    np.testing.assert_array_equal(ends[0.0], a)  # dequantised, then quantised again: bit-identical
    np.testing.assert_allclose(ends[1.0], b, atol=0.05)
    mid, gap = ends[0.5], np.linalg.norm(a - b)
    assert np.linalg.norm(mid - a) < gap and np.linalg.norm(mid - b) < gap
    with pytest.raises(ValueError, match="alpha"):
        average_graphs(two["a"] / "text.onnx", two["b"] / "text.onnx", two["tmp"] / "x.onnx", 1.5)


def test_a_directory_gets_the_average_with_new_hashes_and_version(two: dict[str, Path]) -> None:
    out = two["tmp"] / "averaged"
    manifest = average_model_dir(two["a"], two["b"], out, role="text", alpha=0.5)
    read_manifest(out, verify_hashes=True)
    before = json.loads((two["a"] / "manifest.json").read_text())
    assert manifest["version"] != before["version"]
    assert manifest["averaged"]["with"] == json.loads((two["b"] / "manifest.json").read_text())["version"]
    for name in ("image.onnx", "match.onnx", "heads.npz", "tokenizer.json"):
        assert (out / name).read_bytes() == (two["a"] / name).read_bytes()
    assert PBRRanker(out).embed_dialogues(TEXTS).shape[0] == len(TEXTS)
    with pytest.raises(NotConvertible, match="text_multilingual"):
        average_model_dir(two["a"], two["b"], two["tmp"] / "none")  # neither has a second tower
