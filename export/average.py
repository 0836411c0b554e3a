"""Two text towers of one graph, averaged: the weight average ("model soup", Wortsman et al., ICML 2022) of two
dynamic-int8 towers fine-tuned from the same start.

The multilingual tower is distilled with its bottom layers frozen, so two distillation runs differ only in the
top layers. Each run trades one reading for another: the shipped student ranks image-only stickers best, while a
student also scored against stickers with their text fused (``label_sticker_text``) ranks fused stickers better
but lost one of the demo's sad messages to 😲. Their average keeps what both get right
(docs/RESULTS.md, "Averaging two multilingual students").

Both graphs are dequantised exactly (``export/text_opt.py``), every fp32 weight that differs is averaged as
``(1 - alpha) * A + alpha * B``, and the result is quantised again as the tower was (int8 per-channel MatMuls;
4-bit word embeddings are left as they are, identical in both since they are frozen). The model directory gets
the new tower, new hashes and a new version, and its manifest says what was averaged with what.

    python -m export.average MODEL_DIR OTHER_DIR --out OUT [--role text_multilingual] [--alpha 0.5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from engine.ranking import sha256_file
from export.pbr import new_version, swap_in_staged
from export.text_opt import (
    NotConvertible,
    dequantize_dynamic_int8,
    is_fused,
    quantize_dynamic_int8,
    quantize_fused,
)


def average_graphs(a: Path, b: Path, out: Path, alpha: float = 0.5) -> int:
    """Write the average of the int8 graphs ``a`` and ``b`` (same architecture) to ``out``; returns how many
    weights differed and were averaged."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within [0, 1], not {alpha}")
    ga, gb = dequantize_dynamic_int8(onnx.load(str(a))), dequantize_dynamic_int8(onnx.load(str(b)))
    others = {i.name: i for i in gb.graph.initializer}
    if set(others) != {i.name for i in ga.graph.initializer}:
        raise NotConvertible(f"{a} and {b} are not the same graph: their weights differ in name")
    averaged = 0
    for init in ga.graph.initializer:
        x, y = numpy_helper.to_array(init), numpy_helper.to_array(others[init.name])
        if x.shape != y.shape:
            raise NotConvertible(f"{init.name}: shape {x.shape} in {a}, {y.shape} in {b}")
        if x.dtype.kind == "f" and not np.array_equal(x, y):
            mixed = ((1.0 - alpha) * x.astype(np.float64) + alpha * y.astype(np.float64)).astype(x.dtype)
            init.CopyFrom(numpy_helper.from_array(mixed, init.name))
            averaged += 1
        elif not np.array_equal(x, y):
            raise NotConvertible(f"{init.name} ({x.dtype}) differs and cannot be averaged")
    with tempfile.TemporaryDirectory(dir=Path(out).parent, prefix=".average-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        onnx.save(ga, str(fp32))
        _quantize_like(Path(a), fp32, Path(out))
    return averaged


def _quantize_like(original: Path, fp32: Path, out: Path) -> None:
    """Quantise ``fp32`` as ``original`` was: the fused graph's way, or int8 MatMuls (beside 4-bit word
    embeddings, which are not touched)."""
    if is_fused(original):
        quantize_fused(fp32, out)
    else:
        quantize_dynamic_int8(fp32, out, ["MatMul"])


def average_model_dir(
    model_dir: Path, other_dir: Path, out_dir: Path, role: str = "text_multilingual", alpha: float = 0.5
) -> dict[str, Any]:
    """``model_dir`` with its ``role`` tower replaced by the average of its own and ``other_dir``'s, written
    atomically to ``out_dir``. Every other file is ``model_dir``'s. Returns the new manifest."""
    model_dir, other_dir, out_dir = Path(model_dir), Path(other_dir), Path(out_dir)
    manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    other = json.loads((other_dir / "manifest.json").read_text(encoding="utf-8"))
    if role not in manifest["files"] or role not in other.get("files", {}):
        raise NotConvertible(f"both directories need a {role!r} tower")
    started = time.time()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".average-") as tmp:
        stage = Path(tmp) / "stage"
        shutil.copytree(model_dir, stage)
        name = manifest["files"][role]
        averaged = average_graphs(model_dir / name, other_dir / other["files"][role], stage / name, alpha)
        manifest["sha256"] = {n: sha256_file(stage / n) for n in manifest["files"].values()}
        manifest["averaged"] = {
            "role": role,
            "alpha": alpha,
            "weights_averaged": averaged,
            "from": manifest["version"],
            "with": other["version"],
            "seconds": round(time.time() - started, 1),
        }
        manifest["version"] = new_version(manifest["version"], manifest["sha256"])
        swap_in_staged(stage, manifest, out_dir, tmp)
    return manifest


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m export.average",
        description="Replace a model directory's tower by the weight average of its own and another "
        "directory's tower of the same graph.",
    )
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("other_dir", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--role", default="text_multilingual", help="which tower (a manifest file role)")
    ap.add_argument("--alpha", type=float, default=0.5, help="the other tower's share")
    args = ap.parse_args(argv)
    m = average_model_dir(args.model_dir, args.other_dir, args.out, args.role, args.alpha)
    print(f"{m['version']}: {m['averaged']['weights_averaged']} weights averaged -> {args.out}")


if __name__ == "__main__":
    main()
