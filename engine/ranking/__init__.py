"""Rankers behind one interface; ``load_ranker`` picks the one the settings ask for."""

from __future__ import annotations

from pathlib import Path

from engine.errors import ModelKind, ModelProblem
from engine.ranking._base import (
    ModelMissing,
    PackRanker,
    Ranker,
    StickerInput,
    l2_normalise,
    per_pack,
    top_k,
)
from engine.ranking._onnx import OnnxTextEncoder, read_manifest, sha256_file
from engine.ranking._pbr import PBRRanker
from engine.ranking._text_baseline import TextBaselineRanker


def load_ranker(
    kind: str,
    model_dir: Path,
    max_turns: int = 8,
    threads: int = 0,
    multilingual: bool = True,
    name_pictures: bool = True,
) -> Ranker:
    """``kind`` is "text-baseline" or "auto" (the manifest says which model the directory holds);
    ``multilingual=False`` keeps every dialogue on a PBR model's English tower; ``name_pictures=False``
    leaves a sticker without text unnamed even where the model has a bank of known pictures."""
    # every file is checked against the manifest's hashes (cached by size and mtime): a damaged or swapped
    # file is refused by name rather than served
    manifest = read_manifest(Path(model_dir), verify_hashes=True)
    model_kind = manifest.get("kind")
    if kind not in ("auto", model_kind):
        raise ModelMissing(
            Path(model_dir), ModelProblem.WRONG_KIND, found=repr(model_kind), expected=repr(kind)
        )
    if model_kind == "text-baseline":
        return TextBaselineRanker(Path(model_dir), max_turns=max_turns, threads=threads)
    if model_kind == "pbr":
        return PBRRanker(
            Path(model_dir),
            max_turns=max_turns,
            threads=threads,
            multilingual=multilingual,
            name_pictures=name_pictures,
        )
    raise ModelMissing(Path(model_dir), ModelProblem.UNKNOWN_KIND, found=repr(model_kind))


__all__ = [
    "ModelKind",
    "ModelMissing",
    "ModelProblem",
    "OnnxTextEncoder",
    "PBRRanker",
    "PackRanker",
    "Ranker",
    "StickerInput",
    "TextBaselineRanker",
    "l2_normalise",
    "load_ranker",
    "per_pack",
    "read_manifest",
    "sha256_file",
    "top_k",
]
