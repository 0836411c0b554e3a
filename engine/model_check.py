"""Is a model directory intact and runnable? No PyTorch and no checkpoint (the CLI's ``verify DIR``).

Checks every file against the SHA-256 its manifest records, then runs each tower once on fixed inputs (two
dialogues; for models with an image tower two drawn stickers, and the matching head on them) and checks the
outputs' shapes, that they are finite and L2-normalised, and that different inputs give different vectors.
Parity with the PyTorch checkpoint is ``export/verify.py``'s job (it needs torch and the checkpoint).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from engine.ranking import PBRRanker, StickerInput, load_ranker, read_manifest, sha256_file

SMOKE_DIALOGUES = ("alice: I finally passed my driving test!!", "bob: oh no, I lost my keys again")
# For a model with a tower for other languages (engine/language.py routes these away from English).
SMOKE_OTHER = ("Ich habe endlich meine Führerscheinprüfung bestanden!", "ой, я опять потеряла ключи")
NORM_TOLERANCE = 1e-3


@dataclass
class FileCheck:
    name: str
    ok: bool
    detail: str  # "sha256 ok", "missing", "sha256 differs from the manifest", "no hash in the manifest"


@dataclass
class TowerCheck:
    name: str
    ok: bool
    detail: str
    seconds: float = 0.0


@dataclass
class ModelCheck:
    model_dir: str
    kind: str
    version: str
    files: list[FileCheck] = field(default_factory=list)
    towers: list[TowerCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files) and bool(self.towers) and all(t.ok for t in self.towers)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _sticker(color: str, shape: str) -> Image.Image:
    img = Image.new("RGBA", (96, 96), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    (draw.ellipse if shape == "circle" else draw.rectangle)((12, 12, 84, 84), fill=color)
    return img


def _vectors(out: np.ndarray, n: int, dim: int | None) -> str | None:
    """Why ``out`` is not n distinct, finite, unit-length vectors of ``dim`` (None: it is)."""
    if out.ndim != 2 or out.shape[0] != n or (dim is not None and out.shape[1] != dim):
        return f"shape {tuple(out.shape)}, expected ({n}, {dim if dim is not None else 'd'})"
    if not np.isfinite(out).all():
        return "non-finite values"
    norms = np.linalg.norm(out, axis=1)
    if np.abs(norms - 1).max() > NORM_TOLERANCE:
        return f"not L2-normalised (norms {norms.min():.4f}..{norms.max():.4f})"
    if n > 1 and np.allclose(out[0], out[1], atol=1e-6):
        return "different inputs give the same vector"
    return None


def _run(name: str, fn: Callable[[], str | None]) -> TowerCheck:
    start = time.perf_counter()
    try:
        problem = fn()
    except Exception as exc:  # an ONNX runtime failure is exactly what this reports
        problem = f"{type(exc).__name__}: {exc}"
    return TowerCheck(name, problem is None, problem or "ok", time.perf_counter() - start)


def check_model_dir(model_dir: Path) -> ModelCheck:
    """Hashes, then one smoke run per tower. Raises ``ModelMissing`` when there is no readable manifest."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    report = ModelCheck(str(model_dir), str(manifest.get("kind")), str(manifest.get("version")))
    hashes: dict[str, str] = manifest.get("sha256", {})
    for name in sorted(set(manifest.get("files", {}).values()) | set(hashes)):
        path = model_dir / name
        if not path.is_file():
            report.files.append(FileCheck(name, False, "missing"))
        elif name not in hashes:
            report.files.append(FileCheck(name, False, "no hash in the manifest"))
        elif sha256_file(path) != hashes[name]:
            report.files.append(FileCheck(name, False, "sha256 differs from the manifest"))
        else:
            report.files.append(FileCheck(name, True, "sha256 ok"))
    if not all(f.ok for f in report.files):
        return report  # a damaged file: running it would only blur what is wrong

    ranker = load_ranker("auto", model_dir)
    dim = manifest.get("embedding_dim")
    dialogues: dict[str, np.ndarray] = {}

    def text_tower() -> str | None:
        texts = [ranker.dialogue_text([t]) for t in SMOKE_DIALOGUES]
        dialogues["out"] = ranker.embed_dialogues(texts)
        return _vectors(dialogues["out"], len(texts), dim)

    report.towers.append(_run("text tower", text_tower))
    if isinstance(ranker, PBRRanker) and ranker.has_multilingual:
        pbr = ranker

        def multilingual_tower() -> str | None:
            texts = [pbr.dialogue_text([t]) for t in SMOKE_OTHER]
            routed = [pbr.dialogue_tower(t) for t in texts]
            if routed != ["multilingual"] * len(texts):
                return f"routing sent the smoke dialogues to {routed}"
            return _vectors(pbr.embed_dialogues(texts, tower="multilingual"), len(texts), dim)

        report.towers.append(_run("multilingual text tower", multilingual_tower))
    stickers = [
        StickerInput(_sticker("gold", "circle"), "😀"),
        StickerInput(_sticker("navy", "square"), "😢"),
    ]
    embedded: dict[str, np.ndarray] = {}

    def sticker_tower() -> str | None:
        embedded["out"] = ranker.embed_stickers(stickers)
        return _vectors(embedded["out"], len(stickers), dim)

    report.towers.append(_run("image tower" if ranker.needs_images else "sticker-text tower", sticker_tower))
    if isinstance(ranker, PBRRanker) and ranker.names_pictures:
        named = ranker

        def known_pictures() -> str | None:
            images = [s.image for s in stickers]
            names = named.nearest_known(named.embed_images(images)[0])
            if len(names) != len(images) or not all(n is None or isinstance(n, str) for n in names):
                return f"the bank named {len(images)} pictures as {names!r}"
            return _vectors(named.embed_stickers([StickerInput(i) for i in images]), len(images), dim)

        report.towers.append(_run("known pictures", known_pictures))
    rerank = getattr(ranker, "rerank_scores", None)
    if rerank is not None:

        def match_head() -> str | None:
            if "out" not in dialogues or "out" not in embedded:
                return "skipped: a tower it reads failed"
            logits = np.asarray(rerank(dialogues["out"][0], embedded["out"]))
            if logits.shape != (len(stickers),) or not np.isfinite(logits).all():
                return f"logits of shape {logits.shape}: expected ({len(stickers)},), finite"
            return None

        report.towers.append(_run("matching head", match_head))
    return report
