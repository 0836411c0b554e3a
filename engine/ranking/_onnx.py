"""onnxruntime sessions and model-directory manifests (no torch anywhere on this path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ModelKind, ModelMissing, ModelProblem
from engine.fsutil import sha256_file
from engine.preprocess import TextTokenizer
from engine.ranking._base import l2_normalise

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


# Every model file is checked against its manifest's SHA-256 before it is loaded, so a damaged or swapped file
# is refused with its name instead of serving wrong vectors. (resolved path, size, mtime in ns) → SHA-256 of
# files already checked in this process, so a model re-loaded (registry swaps, several services) is hashed
# once; a changed file has a new size or mtime.
_VERIFIED: dict[tuple[str, int, int], str] = {}


def verified_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _VERIFIED.get(key)
    if digest is None:
        digest = _VERIFIED[key] = sha256_file(path)
    return digest


def read_manifest(
    model_dir: Path, kind: ModelKind | None = None, verify_hashes: bool = False
) -> dict[str, Any]:
    """Load and check ``manifest.json``. Every failure is a :class:`ModelMissing` that says which model the
    directory should hold (``kind``; None: whichever is served from it), so the caller can name the command
    that builds it."""
    model_dir = Path(model_dir)
    path = model_dir / MANIFEST
    if not path.is_file():
        raise ModelMissing(model_dir, ModelProblem.NO_MANIFEST, kind=kind, file=MANIFEST)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelMissing(
            model_dir, ModelProblem.UNREADABLE_MANIFEST, kind=kind, file=path, detail=str(exc)
        ) from exc
    if manifest.get("format") != FORMAT_VERSION:
        raise ModelMissing(
            model_dir,
            ModelProblem.WRONG_FORMAT,
            kind=kind,
            file=path,
            found=repr(manifest.get("format")),
            expected=str(FORMAT_VERSION),
        )
    for role, name in manifest.get("files", {}).items():
        f = model_dir / name
        if not f.is_file():
            raise ModelMissing(model_dir, ModelProblem.MISSING_FILE, kind=kind, file=name, role=role)
        expected = (manifest.get("sha256") or {}).get(name) if verify_hashes else None
        if expected is not None and verified_sha256(f) != expected:
            raise ModelMissing(model_dir, ModelProblem.CHANGED_FILE, kind=kind, file=f)
    return manifest


# onnxruntime's CPU SkipLayerNormalization kernel (what its session-time fusion turns a residual Add + LayerNorm
# into) measured ~5x slower than the two unfused ops on the text tower's [64, 384] rows (109 vs 20 µs, twice per
# layer); the outputs are the same up to float rounding (docs/BENCHMARKS.md, "The text tower toward its floor").
DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]


def make_session(path: Path, threads: int = 0) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # No busy-waiting between runs: a bot interleaves the text tower with the matching head (another session,
    # another thread pool) and database work, and idle threads spinning for the next run took the cores from
    # them (measured per /sticker at 1k stickers: text tower 10.2 -> 6.0 ms, whole request 15.8 -> 12.5 ms).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(
            str(path),
            sess_options=opts,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=DISABLED_OPTIMIZERS,
        )
    except Exception as exc:  # a garbage or truncated file is a clear "which file" error
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelMissing(path.parent, ModelProblem.UNLOADABLE_FILE, file=path, detail=reason) from None


class OnnxTextEncoder:
    """A BERT-style text tower in ONNX: token ids → pooled, L2-normalised vectors."""

    def __init__(
        self, model_path: Path, tokenizer_path: Path, max_tokens: int, output: str, threads: int = 0
    ) -> None:
        self.session = make_session(model_path, threads)
        self.tokenizer = TextTokenizer(tokenizer_path, max_tokens)
        self._inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if output not in outputs:
            raise ModelMissing(
                model_path.parent,
                ModelProblem.WRONG_OUTPUTS,
                file=model_path,
                found=str(outputs),
                expected=repr(output),
            )
        self._output = output

    def encode(
        self, texts: list[str], batch_size: int = 32, normalise: bool = True, max_tokens: int | None = None
    ) -> np.ndarray:
        """Pooled vectors (L2-normalised unless ``normalise=False``, e.g. before a projection)."""
        chunks = []
        for start in range(0, len(texts), batch_size):
            enc = self.tokenizer.encode(texts[start : start + batch_size], max_tokens)
            (out,) = self.session.run([self._output], enc.as_feed(self._inputs))
            if out.ndim == 3:  # token embeddings: mean-pool over the attention mask
                mask = enc.attention_mask[..., None].astype(np.float32)
                out = (out * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
            chunks.append(out.astype(np.float32))
        if not chunks:
            return np.zeros((0, 0), dtype=np.float32)
        pooled = np.concatenate(chunks)
        return l2_normalise(pooled) if normalise else pooled
