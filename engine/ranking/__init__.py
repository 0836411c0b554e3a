"""Rankers behind one interface; ``load_ranker`` picks the one the settings ask for."""

from __future__ import annotations

from pathlib import Path

from engine.ranking._base import ModelMissing, Ranker, StickerInput, l2_normalise, top_k
from engine.ranking._onnx import OnnxTextEncoder, read_manifest, sha256_file
from engine.ranking._pbr import PBRRanker
from engine.ranking._text_baseline import TextBaselineRanker


def load_ranker(kind: str, model_dir: Path, max_turns: int = 8, threads: int = 0) -> Ranker:
    """``kind`` is "text-baseline" or "auto" (the manifest says which model the directory holds)."""
    # issue 14: every file is checked against the manifest's hashes (cached by size and mtime)
    manifest = read_manifest(Path(model_dir), "stickerpick setup", verify_hashes=True)
    model_kind = manifest.get("kind")
    if kind not in ("auto", model_kind):
        raise ModelMissing(f"{model_dir} holds a {model_kind!r} model but the ranker {kind!r} was asked for")
    if model_kind == "text-baseline":
        return TextBaselineRanker(Path(model_dir), max_turns=max_turns, threads=threads)
    if model_kind == "pbr":
        return PBRRanker(Path(model_dir), max_turns=max_turns, threads=threads)
    raise ModelMissing(f"{model_dir}: unknown model kind {model_kind!r}")


__all__ = [
    "ModelMissing",
    "OnnxTextEncoder",
    "PBRRanker",
    "Ranker",
    "StickerInput",
    "TextBaselineRanker",
    "l2_normalise",
    "load_ranker",
    "read_manifest",
    "sha256_file",
    "top_k",
]
