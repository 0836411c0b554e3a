"""The engine's onnxruntime sessions: the graph rewrites it turns off give the same outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from engine.ranking._onnx import make_session


def _residual_layer_norm(path: Path, width: int = 48) -> None:
    """y = LayerNorm(x + skip): the pair onnxruntime fuses into SkipLayerNormalization."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal(width).astype(np.float32), "gamma"),
        numpy_helper.from_array(rng.standard_normal(width).astype(np.float32), "beta"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "skip"], ["sum"]),
            helper.make_node("LayerNormalization", ["sum", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-12),
        ],
        "residual",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, "S", width]) for n in ("x", "skip")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "S", width])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _fused_ops(path: Path, tmp: Path, disabled: list[str]) -> set[str]:
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp / "optimized.onnx")
    ort.InferenceSession(
        str(path), sess_options=opts, providers=["CPUExecutionProvider"], disabled_optimizers=disabled
    )
    return {n.op_type for n in onnx.load(str(tmp / "optimized.onnx")).graph.node}


def test_sessions_keep_add_and_layer_norm_unfused(tmp_path, monkeypatch):
    model = tmp_path / "residual.onnx"
    _residual_layer_norm(model)
    assert "SkipLayerNormalization" in _fused_ops(model, tmp_path, [])  # what onnxruntime would do

    seen: dict = {}
    real = ort.InferenceSession

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    sess = make_session(model, threads=1)
    assert "SkipLayerNormalization" not in _fused_ops(model, tmp_path, seen["disabled_optimizers"])
    x, skip = (np.random.default_rng(i).standard_normal((1, 7, 48)).astype(np.float32) for i in (1, 2))
    (got,) = sess.run(["y"], {"x": x, "skip": skip})
    (fused,) = real(str(model), providers=["CPUExecutionProvider"]).run(["y"], {"x": x, "skip": skip})
    np.testing.assert_allclose(got, fused, atol=1e-5)
