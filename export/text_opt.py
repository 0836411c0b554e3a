"""The text tower's graph nearer its floor: onnxruntime's transformer fusions, then int8 again.

The exporter's BERT graph is ~260 nodes after onnxruntime's own session-time fusions (Reshape/Transpose/Shape
arithmetic around every attention, the mask's Where/Cast chain). ``onnxruntime.transformers.optimizer`` rewrites
it into ~50 (EmbedLayerNormalization, Attention, BiasGelu), which dynamic int8 per-channel quantisation then
turns into QEmbedLayerNormalization, QAttention and DynamicQuantizeMatMul. The Add + LayerNorm pairs are left
unfused on purpose: onnxruntime's CPU SkipLayerNormalization kernel measured ~5x slower than Add +
LayerNormalization on [64, 384] (109 vs 20 µs), which is also why the engine's sessions disable that fusion
(``engine/ranking/_onnx.py``). Measured in docs/BENCHMARKS.md ("The text tower toward its floor").

The multilingual tower (e5, a 250k-token vocabulary) keeps its 4-bit word-embedding table (``export/q4.py``,
a ``GatherBlockQuantized`` of its own that EmbedLayerNormalization cannot take): its embeddings stay unfused,
and everything from the first LayerNorm on is fused alike (12 Attention, 12 BiasGelu).

Two entry points:
- :func:`optimize_fp32_to_int8`: what ``export/pbr.py`` calls on the exporter's fp32 graph (future exports get
  it, both towers);
- :func:`convert_model_dir` (``python -m export.text_opt MODEL_DIR [--tower text_multilingual]``): rewrites
  an existing directory's tower from its shipped *int8* graph, with no checkpoint: the int8 weights are
  dequantised exactly (W = (Wq - zp) * scale per channel), giving an fp32 graph whose int8 re-quantisation
  is bit-identical to the shipped one; that graph is fused and re-quantised, and the manifest gets a new
  version and sha256s. With ``--check DATASET`` it first measures R@1 of both on each dataset's validation
  split and refuses a loss over ``--max-r1-loss`` points.

The fused Attention is int8 (QAttention, whose QKV weights onnxruntime's quantiser keeps in 7 bits) by default:
fp32 Attention was slower than today's tower; ``quantize_attention=False`` keeps it fp32.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Container
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from engine.ranking import sha256_file
from export.pbr import new_version, swap_in_staged

# What the rewrite is recorded as in the manifest's "quantized" entry and its version.
OPTIMIZED_TAG = "fused"
INT8_OPS = ["MatMul", "Gather", "EmbedLayerNormalization"]


class NotConvertible(ValueError):
    """The graph is not the exporter's BERT in dynamic int8 (or the fusions did not apply)."""


# -- int8 → fp32 ----------------------------------------------------------------------------------------------
def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            values[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return values


def _dequant(q: np.ndarray, zero_point: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return ((q.astype(np.float32) - zero_point.astype(np.float32)) * scale.astype(np.float32)).astype(
        np.float32
    )


def dequantize_dynamic_int8(model: onnx.ModelProto) -> onnx.ModelProto:
    """The fp32 graph a dynamic-int8 graph (onnxruntime's ``quantize_dynamic``) was made from.

    ``DynamicQuantizeLinear(x) → MatMulInteger(·, Wq) → Cast → Mul(·, x_scale * w_scale)`` becomes
    ``MatMul(x, W)``; ``Gather(Eq) → DequantizeLinear`` becomes ``Gather(E)``; a fused graph's
    ``QAttention`` and ``QEmbedLayerNormalization`` become the fp32 ``Attention`` and
    ``EmbedLayerNormalization`` they were quantised from; dead nodes are pruned."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    const = _constants(g)
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    weights: dict[str, np.ndarray] = {}
    # a new weight's name must not be any tensor's name already: an initializer, a node's output
    taken = (const, weights, {o for n in g.node for o in n.output})
    replaced: dict[int, onnx.NodeProto] = {}
    dropped: set[int] = set()
    for n in g.node:
        if n.op_type == "MatMulInteger":
            a_q, w_q, _a_zp, w_zp = n.input
            dq = producer.get(a_q)
            cast = _only(consumers.get(n.output[0], []), "Cast")
            mul = _only(consumers.get(cast.output[0], []), "Mul")
            scales = producer.get(next(i for i in mul.input if i != cast.output[0]))
            if (
                dq is None
                or dq.op_type != "DynamicQuantizeLinear"
                or scales is None
                or scales.op_type != "Mul"
            ):
                raise NotConvertible(f"{n.name}: not a dynamic-int8 MatMul chain")
            w_scale = next(i for i in scales.input if i in const)
            name = _fresh(w_q.removesuffix("_quantized") + "_fp32", *taken)
            weights[name] = _dequant(const[w_q], const[w_zp], const[w_scale])
            replaced[id(n)] = helper.make_node("MatMul", [dq.input[0], name], [mul.output[0]], name=n.name)
            dropped.update({id(cast), id(mul)})
        elif n.op_type == "QAttention":
            replaced[id(n)] = _attention_fp32(n, producer, const, weights, taken)
        elif n.op_type == "QEmbedLayerNormalization":
            replaced[id(n)] = _embed_layer_norm_fp32(n, const, weights, taken)
        elif n.op_type == "DequantizeLinear" and n.input[0] in producer:
            gather = producer[n.input[0]]
            if gather.op_type != "Gather" or gather.input[0] not in const:
                continue
            name = _fresh(gather.input[0].removesuffix("_quantized"), *taken)
            weights[name] = _dequant(const[gather.input[0]], const[n.input[2]], const[n.input[1]])
            replaced[id(gather)] = helper.make_node(
                "Gather", [name, gather.input[1]], [n.output[0]], name=gather.name
            )
            dropped.add(id(n))
    if not replaced:
        raise NotConvertible("no dynamic-int8 MatMulInteger, QAttention or quantised Gather in the graph")
    nodes = [replaced.get(id(n), n) for n in g.node if id(n) not in dropped]
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(numpy_helper.from_array(w, name) for name, w in weights.items())
    _prune(g)
    return model


def _attention_fp32(
    n: onnx.NodeProto,
    producer: dict[str, onnx.NodeProto],
    const: dict[str, np.ndarray],
    weights: dict[str, np.ndarray],
    taken: tuple[Container[str], ...],
) -> onnx.NodeProto:
    """``QAttention(DynamicQuantizeLinear(x), Wq, bias, x_scale, w_scale, mask, x_zp, w_zp)`` → the fp32
    ``Attention(x, W, bias, mask)`` (com.microsoft), W dequantised per column."""
    x_q, w_q, bias, _x_scale, w_scale, mask, _x_zp, w_zp = (list(n.input) + [""] * 9)[:8]
    dq = producer.get(x_q)
    if dq is None or dq.op_type != "DynamicQuantizeLinear" or w_q not in const:
        raise NotConvertible(f"{n.name}: not a dynamic-int8 QAttention")
    name = _fresh(w_q.removesuffix("_quantized"), *taken)
    weights[name] = _dequant(const[w_q], const[w_zp], const[w_scale])
    node = helper.make_node(
        "Attention", [dq.input[0], name, bias, mask], list(n.output), name=n.name, domain="com.microsoft"
    )
    node.attribute.extend(n.attribute)
    return node


def _embed_layer_norm_fp32(
    n: onnx.NodeProto,
    const: dict[str, np.ndarray],
    weights: dict[str, np.ndarray],
    taken: tuple[Container[str], ...],
) -> onnx.NodeProto:
    """``QEmbedLayerNormalization`` → ``EmbedLayerNormalization`` (com.microsoft): its five tables (word,
    position, segment embeddings, gamma, beta) dequantised, each with its own scale and zero point."""
    ids, segments, *rest = n.input
    tables, mask, scales, zero_points = rest[:5], rest[5], rest[6:11], rest[11:16]
    fp32 = []
    for q, scale, zp in zip(tables, scales, zero_points, strict=True):
        name = _fresh(q.removesuffix("_quantized"), *taken)
        weights[name] = _dequant(const[q], const[zp], const[scale])
        fp32.append(name)
    node = helper.make_node(
        "EmbedLayerNormalization",
        [ids, segments, *fp32, mask],
        list(n.output),
        name=n.name,
        domain="com.microsoft",
    )
    node.attribute.extend(n.attribute)
    return node


def _only(nodes: list[onnx.NodeProto], op: str) -> onnx.NodeProto:
    if len(nodes) != 1 or nodes[0].op_type != op:
        raise NotConvertible(f"expected one {op} after a MatMulInteger, found {[n.op_type for n in nodes]}")
    return nodes[0]


def _fresh(name: str, *taken: Container[str]) -> str:
    out, k = name, 0
    while any(out in t for t in taken):
        k += 1
        out = f"{name}_{k}"
    return out


def _prune(g: onnx.GraphProto) -> None:
    """Drop nodes and initializers nothing downstream of the outputs uses."""
    live = {o.name for o in g.output}
    keep = []
    for n in reversed(list(g.node)):
        if any(o in live for o in n.output):
            keep.append(n)
            live.update(n.input)
    del g.node[:]
    g.node.extend(reversed(keep))
    inits = [i for i in g.initializer if i.name in live]
    del g.initializer[:]
    g.initializer.extend(inits)


# -- fuse, then quantise ----------------------------------------------------------------------------------
def fuse_fp32(
    src: Path, dst: Path, num_heads: int = 0, hidden_size: int = 0, embed_layer_norm: bool = True
) -> dict[str, int]:
    """onnxruntime's BERT fusions on an fp32 graph (``0``: heads and width read from the graph); returns the
    fused-operator counts and refuses a graph where attention was not fused. ``embed_layer_norm=False``
    leaves the embeddings' Gathers and LayerNorm apart (a 4-bit word-embedding table is a Gather of its own,
    which EmbedLayerNormalization cannot take)."""
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    options.enable_skip_layer_norm = False  # the slow CPU kernel (module docstring)
    options.enable_embed_layer_norm = embed_layer_norm
    opt = optimizer.optimize_model(
        str(src),
        model_type="bert",
        num_heads=num_heads,
        hidden_size=hidden_size,
        opt_level=0,
        optimization_options=options,
    )
    stats = {k: int(v) for k, v in opt.get_fused_operator_statistics().items() if v}
    if not stats.get("Attention"):
        raise NotConvertible(f"onnxruntime's BERT fusions did not apply (fused: {stats})")
    opt.save_model_to_file(str(dst))
    return stats


def quantize_dynamic_int8(src: Path, dst: Path, op_types: list[str]) -> None:
    """Dynamic int8 of ``op_types``, per channel, full range, like ``export.baseline.quantize_int8``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        per_channel=True,
        weight_type=QuantType.QInt8,
        reduce_range=False,
        op_types_to_quantize=op_types,
        # shape inference does not type the outputs of onnxruntime's own (com.microsoft) ops
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def int8_ops(quantize_attention: bool = True, q4_embeddings: bool = False) -> list[str]:
    """The operators a fused graph quantises: ``INT8_OPS`` (only MatMul where the word embeddings are a
    4-bit table of their own), and Attention unless ``quantize_attention`` is off (its int8 kernel uses 7-bit
    weights)."""
    ops = ["MatMul"] if q4_embeddings else list(INT8_OPS)
    return [*ops, "Attention"] if quantize_attention else ops


def quantize_fused(src: Path, dst: Path, quantize_attention: bool = True) -> None:
    """Dynamic int8 of the fused graph (:func:`int8_ops`)."""
    quantize_dynamic_int8(src, dst, int8_ops(quantize_attention))


def optimize_fp32_to_int8(
    src: Path, dst: Path, quantize_attention: bool = True, q4_embeddings: bool = False
) -> dict[str, int]:
    """The exporter's fp32 ``src`` → fused, int8 ``dst``; returns the fused-operator counts. With
    ``q4_embeddings`` (a large vocabulary, ``export/q4.py``) the word-embedding table becomes 4-bit and the
    embeddings stay unfused."""
    with tempfile.TemporaryDirectory(prefix="text-opt-") as tmp:
        fused = Path(tmp) / "fused.onnx"
        stats = fuse_fp32(Path(src), fused, embed_layer_norm=not q4_embeddings)
        if q4_embeddings:
            from export.q4 import quantize_int8_q4_embeddings

            quantize_int8_q4_embeddings(fused, Path(dst), op_types=int8_ops(quantize_attention, True))
        else:
            quantize_fused(fused, Path(dst), quantize_attention)
    return stats


def has_q4_embeddings(model: onnx.ModelProto) -> bool:
    """Whether the graph's word embeddings are a 4-bit table (``export/q4.py``)."""
    return any(n.op_type == "GatherBlockQuantized" for n in model.graph.node)


def optimize_int8(src: Path, dst: Path, quantize_attention: bool = True) -> dict[str, int]:
    """A shipped dynamic-int8 ``src`` → fused, int8 ``dst`` (dequantise, fuse, re-quantise). A 4-bit
    word-embedding table is kept as it is (its Gather is not dequantised) and the embeddings stay unfused."""
    model = onnx.load(str(src))
    with tempfile.TemporaryDirectory(prefix="text-opt-") as tmp:
        fp32, fused = Path(tmp) / "fp32.onnx", Path(tmp) / "fused.onnx"
        onnx.save(dequantize_dynamic_int8(model), str(fp32))
        if not has_q4_embeddings(model):
            return optimize_fp32_to_int8(fp32, dst, quantize_attention)
        # the table is 4-bit already: only the MatMuls (and the Attention) become int8
        stats = fuse_fp32(fp32, fused, embed_layer_norm=False)
        quantize_dynamic_int8(fused, Path(dst), int8_ops(quantize_attention, q4_embeddings=True))
    return stats


def op_counts(path: Path) -> dict[str, int]:
    return dict(Counter(n.op_type for n in onnx.load(str(path)).graph.node))


def is_fused(path: Path) -> bool:
    ops = op_counts(path)
    return bool(ops.get("Attention") or ops.get("QAttention"))


# -- a model directory ------------------------------------------------------------------------------------
def quantization_label(previous: Any, quantize_attention: bool) -> str:
    base = previous if isinstance(previous, str) and previous else "int8-dynamic-per-channel"
    tag = OPTIMIZED_TAG + ("" if quantize_attention else "+fp32-attention")
    return base if tag in base.split("+") else f"{base}+{tag}"


# The dialogue towers a model directory may hold (the manifest's file roles).
TOWERS = ("text", "text_multilingual")


def graph_key(tower: str) -> str:
    """The manifest entry that records how ``tower``'s graph was made."""
    return "text_graph" if tower == "text" else f"{tower}_graph"


def convert_model_dir(
    model_dir: Path, out_dir: Path | None = None, quantize_attention: bool = True, tower: str = "text"
) -> dict:
    """Rewrite ``model_dir``'s ``tower`` (the English ``text`` or ``text_multilingual``) as the fused int8
    graph (into ``out_dir``, or in place), with a new manifest version and sha256s. Atomic: the directory is
    staged beside it and swapped in."""
    model_dir = Path(model_dir)
    out_dir = Path(out_dir) if out_dir is not None else model_dir
    manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    if tower not in TOWERS or tower not in manifest["files"]:
        raise NotConvertible(f"{model_dir} has no {tower!r} tower (its files: {sorted(manifest['files'])})")
    text_name = manifest["files"][tower]
    if is_fused(model_dir / text_name):
        raise NotConvertible(f"{model_dir / text_name} is already fused")
    started = time.time()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".text-opt-") as tmp:
        stage = Path(tmp) / "stage"
        shutil.copytree(model_dir, stage)
        stats = optimize_int8(model_dir / text_name, stage / text_name, quantize_attention)
        manifest["sha256"] = {name: sha256_file(stage / name) for name in manifest["files"].values()}
        q = manifest.get("quantized")
        if isinstance(q, dict):
            q[tower] = quantization_label(q.get(tower), quantize_attention)
        else:
            manifest["quantized"] = quantization_label(q, quantize_attention)
        manifest["version"] = new_version(manifest["version"], manifest["sha256"], OPTIMIZED_TAG)
        key = graph_key(tower)
        manifest[key] = {
            "optimizer": "onnxruntime.transformers (bert fusions)",
            "fused": stats,
            "from": manifest.get(key, {}).get("from") or "int8 graph, dequantised",
            "converted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(time.time() - started, 1),
        }
        swap_in_staged(stage, manifest, out_dir, tmp)
    return manifest


def r1_change(
    before: Path, after: Path, datasets: list[Path], split: str = "val", max_samples: int | None = None
) -> dict[str, dict[str, float]]:
    """R@1 and MRR of two model directories on each dataset's ``split``, scored as the engine scores."""
    from engine.ranking import load_ranker
    from training.data.format import StickerDataset
    from training.evaluate import EngineScorer, evaluate

    out: dict[str, dict[str, float]] = {}
    for path in datasets:
        ds = StickerDataset.open(path)
        row: dict[str, float] = {}
        for label, model_dir in (("before", before), ("after", after)):
            m = evaluate(
                ds, split, EngineScorer(load_ranker("auto", Path(model_dir))), max_samples=max_samples
            )
            row[f"R@1 {label}"], row[f"MRR {label}"], row["n"] = float(m["R@1"]), float(m["MRR"]), m["n"]
        row["R@1 change"] = row["R@1 after"] - row["R@1 before"]
        out[f"{Path(path).name}/{split}"] = row
    return out


def convert_checked(
    model_dir: Path,
    out_dir: Path | None,
    datasets: list[Path],
    max_r1_loss: float = 0.5,
    quantize_attention: bool = True,
    tower: str = "text",
    max_samples: int | None = None,
) -> tuple[dict, dict[str, dict[str, float]], bool]:
    """:func:`convert_model_dir` into a staging directory, R@1 before/after on ``datasets``; the result
    replaces ``out_dir`` (default: ``model_dir``) only if no dataset lost more than ``max_r1_loss`` points.
    Returns (manifest, metric change, applied)."""
    model_dir = Path(model_dir)
    target = Path(out_dir) if out_dir is not None else model_dir
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".text-opt-check-") as tmp:
        candidate = Path(tmp) / "candidate"
        manifest = convert_model_dir(model_dir, candidate, quantize_attention, tower)
        change = r1_change(model_dir, candidate, datasets, max_samples=max_samples) if datasets else {}
        ok = all(row["R@1 change"] >= -max_r1_loss for row in change.values())
        if ok:
            if change:
                manifest[graph_key(tower)]["metric_check"] = change
                (candidate / "manifest.json").write_text(
                    json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
                )
            if target.exists():
                target.rename(Path(tmp) / "old")
            candidate.rename(target)
    return manifest, change, ok


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m export.text_opt",
        description="Rewrite a model directory's dialogue tower as the fused int8 graph (new manifest version "
        "and sha256s); with --check, only if R@1 on each dataset's validation split drops by at most "
        "--max-r1-loss points (name datasets the tower reads: XED's other languages for the multilingual one).",
    )
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--tower", choices=TOWERS, default="text", help="which dialogue tower (default: text)")
    ap.add_argument("--max-samples", type=int, default=None, help="only the first N samples of each check")
    ap.add_argument("--out", type=Path, default=None, help="write here (default: rewrite MODEL_DIR in place)")
    ap.add_argument("--fp32-attention", action="store_true", help="keep the fused Attention in fp32")
    ap.add_argument(
        "--check", type=Path, nargs="*", default=[], help="datasets to measure R@1 on (val split)"
    )
    ap.add_argument("--max-r1-loss", type=float, default=0.5)
    args = ap.parse_args(argv)
    try:
        manifest, change, ok = convert_checked(
            args.model_dir,
            args.out,
            args.check,
            args.max_r1_loss,
            not args.fp32_attention,
            args.tower,
            args.max_samples,
        )
    except NotConvertible as exc:
        raise SystemExit(f"error: {exc}") from None
    for name, row in change.items():
        print(
            f"{name}: R@1 {row['R@1 before']:.2f} -> {row['R@1 after']:.2f} ({row['R@1 change']:+.2f}), "
            f"MRR {row['MRR before']:.2f} -> {row['MRR after']:.2f}, n={row['n']:.0f}"
        )
    if not ok:
        raise SystemExit(f"not applied: R@1 fell by more than {args.max_r1_loss} points")
    print(f"{manifest['version']} -> {args.out or args.model_dir}")


if __name__ == "__main__":
    main()
