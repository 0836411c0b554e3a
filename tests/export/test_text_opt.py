"""The fused text tower (export/text_opt.py): exact dequantisation, the same function after fusion, and the
model-directory rewrite with its manifest and its R@1 guard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from engine.preprocess import TextTokenizer
from engine.ranking import PBRRanker
from engine.ranking._onnx import make_session, read_manifest
from export import text_opt
from export.baseline import quantize_int8
from export.pbr import export_pbr
from training.model import build_tiny_pbr, save_checkpoint

TEXTS = ["i finally passed the exam [SEP] no way, congrats!", "my cat is sick", "pizza tonight? [SEP] yes!!"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny PBR exported twice: fp32, and int8 the way models/default was shipped (plain dynamic int8)."""
    tmp = tmp_path_factory.mktemp("textopt")
    ckpt = save_checkpoint(tmp / "tiny.pt", build_tiny_pbr(seed=5, use_sticker_text=True).eval())
    export_pbr(ckpt, tmp / "fp32", quantize=False)
    export_pbr(ckpt, tmp / "int8", quantize=True)
    plain = tmp / "plain"  # the int8 directory with an unfused text tower, as exports made before this module
    plain.mkdir()
    for f in (tmp / "int8").iterdir():
        (plain / f.name).write_bytes(f.read_bytes())
    quantize_int8(tmp / "fp32" / "text.onnx", plain / "text.onnx")
    manifest = json.loads((plain / "manifest.json").read_text())
    manifest["quantized"]["text"] = "int8-dynamic-per-channel"
    manifest["sha256"]["text.onnx"] = text_opt.sha256_file(plain / "text.onnx")
    (plain / "manifest.json").write_text(json.dumps(manifest))
    return {"fp32": tmp / "fp32", "int8": tmp / "int8", "plain": plain, "ckpt": ckpt}


def _hidden(path: Path, tok_dir: Path) -> np.ndarray:
    sess = make_session(path)
    enc = TextTokenizer(tok_dir / "tokenizer.json", 64).encode(TEXTS)
    (out,) = sess.run(["last_hidden_state"], enc.as_feed([i.name for i in sess.get_inputs()]))
    mask = enc.attention_mask[..., None]
    return (out * mask).sum(1) / mask.sum(1)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_dequantised_graph_requantises_bit_identically(tiny, tmp_path):
    plain = tiny["plain"] / "text.onnx"
    fp32 = tmp_path / "fp32.onnx"
    model = text_opt.dequantize_dynamic_int8(onnx.load(str(plain)))
    assert not {"MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear"} & {
        n.op_type for n in model.graph.node
    }
    onnx.save(model, str(fp32))
    again = tmp_path / "again.onnx"
    quantize_int8(fp32, again)
    np.testing.assert_array_equal(_hidden(again, tiny["plain"]), _hidden(plain, tiny["plain"]))
    # and the fp32 graph is the original up to the int8 rounding of its weights
    assert _cos(_hidden(fp32, tiny["plain"]), _hidden(tiny["fp32"] / "text.onnx", tiny["fp32"])).min() > 0.99


def test_a_fused_graph_dequantises_to_the_fused_fp32_graph_it_came_from(tiny, tmp_path):
    fused = tiny["int8"] / "text.onnx"
    model = text_opt.dequantize_dynamic_int8(onnx.load(str(fused)))
    ops = {n.op_type for n in model.graph.node}
    assert {"Attention", "EmbedLayerNormalization"} <= ops
    assert not {"QAttention", "QEmbedLayerNormalization", "MatMulInteger", "DynamicQuantizeLinear"} & ops
    fp32 = tmp_path / "fused-fp32.onnx"
    onnx.save(model, str(fp32))
    again = tmp_path / "again.onnx"
    text_opt.quantize_fused(fp32, again)
    np.testing.assert_array_equal(_hidden(again, tiny["int8"]), _hidden(fused, tiny["int8"]))
    assert _cos(_hidden(fp32, tiny["int8"]), _hidden(tiny["fp32"] / "text.onnx", tiny["fp32"])).min() > 0.99


def test_refuses_a_graph_that_is_not_dynamic_int8(tiny):
    with pytest.raises(text_opt.NotConvertible):
        text_opt.dequantize_dynamic_int8(onnx.load(str(tiny["fp32"] / "text.onnx")))


def test_fused_graph_computes_the_same_function(tiny, tmp_path):
    out = tmp_path / "fused.onnx"
    stats = text_opt.optimize_int8(tiny["plain"] / "text.onnx", out)
    ops = text_opt.op_counts(out)
    assert stats["Attention"] == ops["QAttention"] >= 1
    assert "SkipLayerNormalization" not in ops  # the slow CPU kernel stays out
    assert sum(ops.values()) < sum(text_opt.op_counts(tiny["plain"] / "text.onnx").values()) / 2
    want = _hidden(tiny["fp32"] / "text.onnx", tiny["fp32"])
    assert _cos(_hidden(out, tiny["plain"]), want).min() > 0.98


def test_export_writes_the_fused_tower(tiny):
    manifest = json.loads((tiny["int8"] / "manifest.json").read_text())
    assert manifest["quantized"]["text"] == "int8-dynamic-per-channel+fused"
    assert text_opt.is_fused(tiny["int8"] / "text.onnx")


def test_convert_model_dir_rewrites_text_and_manifest(tiny, tmp_path):
    out = tmp_path / "converted"
    before = json.loads((tiny["plain"] / "manifest.json").read_text())
    manifest = text_opt.convert_model_dir(tiny["plain"], out)
    assert text_opt.is_fused(out / "text.onnx") and not text_opt.is_fused(tiny["plain"] / "text.onnx")
    assert manifest["version"] != before["version"] and "-fused-" in manifest["version"]
    assert manifest["quantized"]["text"] == "int8-dynamic-per-channel+fused"
    for name in ("image.onnx", "match.onnx", "heads.npz", "tokenizer.json"):
        assert (out / name).read_bytes() == (tiny["plain"] / name).read_bytes()
    read_manifest(out, "rebuild", verify_hashes=True)  # every sha256 matches its new file
    got = PBRRanker(out).embed_dialogues(TEXTS)
    want = PBRRanker(tiny["plain"]).embed_dialogues(TEXTS)
    assert _cos(got, want).min() > 0.98
    with pytest.raises(text_opt.NotConvertible, match="already fused"):
        text_opt.convert_model_dir(out)


def test_checked_conversion_keeps_the_model_when_r1_falls(tiny, tmp_path, monkeypatch):
    target = tmp_path / "model"
    target.mkdir()
    for f in tiny["plain"].iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    original = (target / "text.onnx").read_bytes()

    def change(by: float):
        return lambda before, after, datasets, **kw: {"d/val": {"R@1 change": by, "R@1 before": 50.0}}

    monkeypatch.setattr(text_opt, "r1_change", change(-0.6))
    _, _, applied = text_opt.convert_checked(target, None, [tmp_path], max_r1_loss=0.5)
    assert not applied and (target / "text.onnx").read_bytes() == original
    monkeypatch.setattr(text_opt, "r1_change", change(-0.4))
    manifest, _, applied = text_opt.convert_checked(target, None, [tmp_path], max_r1_loss=0.5)
    assert applied and text_opt.is_fused(target / "text.onnx")
    on_disk = json.loads((target / "manifest.json").read_text())
    assert on_disk["version"] == manifest["version"]
    assert on_disk["text_graph"]["metric_check"]["d/val"]["R@1 change"] == -0.4


def _q4_plain(tiny: dict[str, Path], path: Path) -> Path:
    """The tiny tower as the multilingual tower ships unfused: int8 MatMuls and a 4-bit word-embedding table."""
    from export.q4 import quantize_int8_q4_embeddings

    quantize_int8_q4_embeddings(tiny["fp32"] / "text.onnx", path)
    return path


def _q4_table(path: Path) -> bytes:
    (table,) = [i for i in onnx.load(str(path)).graph.initializer if i.name.endswith(".q4")]
    return table.raw_data


def test_a_tower_with_4_bit_embeddings_fuses_and_keeps_its_table(tiny, tmp_path):
    plain = _q4_plain(tiny, tmp_path / "q4.onnx")
    assert not text_opt.is_fused(plain)
    out = tmp_path / "fused.onnx"
    stats = text_opt.optimize_int8(plain, out)
    ops = text_opt.op_counts(out)
    assert stats["Attention"] == ops["QAttention"] >= 1 and ops["GatherBlockQuantized"] == 1
    assert not {"EmbedLayerNormalization", "QEmbedLayerNormalization", "SkipLayerNormalization"} & set(ops)
    assert _q4_table(out) == _q4_table(plain)  # the table is not dequantised and quantised again
    assert _cos(_hidden(out, tiny["fp32"]), _hidden(plain, tiny["fp32"])).min() > 0.98
    direct = tmp_path / "direct.onnx"  # what an export of a large vocabulary now writes
    text_opt.optimize_fp32_to_int8(tiny["fp32"] / "text.onnx", direct, q4_embeddings=True)
    assert text_opt.op_counts(direct).get("QAttention") and _q4_table(direct) == _q4_table(plain)
    assert _cos(_hidden(direct, tiny["fp32"]), _hidden(plain, tiny["fp32"])).min() > 0.98


def test_convert_model_dir_rewrites_the_multilingual_tower_alone(tiny, tmp_path):
    routed = tmp_path / "routed"
    routed.mkdir()
    for f in tiny["int8"].iterdir():
        (routed / f.name).write_bytes(f.read_bytes())
    _q4_plain(tiny, routed / "text_multilingual.onnx")
    manifest = json.loads((routed / "manifest.json").read_text())
    manifest["files"]["text_multilingual"] = "text_multilingual.onnx"
    manifest["sha256"]["text_multilingual.onnx"] = text_opt.sha256_file(routed / "text_multilingual.onnx")
    manifest["quantized"]["text_multilingual"] = "int8-dynamic-per-channel+q4-word-embeddings"
    (routed / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(text_opt.NotConvertible, match="no 'text_multilingual' tower"):
        text_opt.convert_model_dir(tiny["int8"], tmp_path / "nothing", tower="text_multilingual")
    out = tmp_path / "converted"
    new = text_opt.convert_model_dir(routed, out, tower="text_multilingual")
    assert text_opt.is_fused(out / "text_multilingual.onnx")
    assert (out / "text.onnx").read_bytes() == (routed / "text.onnx").read_bytes()
    assert new["quantized"]["text_multilingual"] == "int8-dynamic-per-channel+q4-word-embeddings+fused"
    assert new["quantized"]["text"] == manifest["quantized"]["text"]
    assert "text_multilingual_graph" in new and new["version"] != manifest["version"]
    read_manifest(out, "rebuild", verify_hashes=True)
