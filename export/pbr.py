"""PBR checkpoint → the model directory the engine serves (onnxruntime only, no torch at serving time).

Layout of the directory (``manifest.json`` lists files, hashes, versions, the training config and metrics):
- ``text.onnx``   the fine-tuned BERT of the dialogue tower, through optimum's exporter (``last_hidden_state``);
                  dynamic int8, per channel, by default;
- ``heads.npz``   what runs in numpy after it: ``text_proj`` (mean-pooled → shared space) and, with sticker text,
                  ``sticker_text_proj`` and the gate that fuses text with the image embedding;
- ``image.onnx``  image tower + projection + L2 norm + emotion head, through ``torch.onnx`` (fp32: it runs once
                  per sticker at indexing time, and Conv int8 is slow on CPUs without VNNI kernels);
- ``match.onnx``  the matching head for re-ranking the dual encoder's top candidates (int8 with the text);
- ``tokenizer.json`` and the preprocessing config (image size, mean/std) in the manifest.

A routed directory (``export/distilled.py --routed``) adds a second dialogue tower for other languages:
``text_multilingual.onnx``, ``tokenizer_multilingual.json``, its head ``text_multilingual_proj`` in
``heads.npz``, and the manifest's ``dialogue_routing`` (``engine/language.py`` reads its ``min_english``).
``pictures.npz`` (``export/pictures.py``, added by ``stickerpick export``): the bank of known pictures that names
stickers without text, image-only vectors of every emoji of the training art styles made by this ``image.onnx``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.ranking import sha256_file
from export.baseline import (
    minilm_dir,
    quantize_int8,
    text_quantization,
    vocab_size_of,
    wants_q4_embeddings,
)
from training.model import PBRModel, load_checkpoint

MANIFEST_FORMAT = 1
OPSET = 17


class _ImageGraph(nn.Module):
    def __init__(self, model: PBRModel) -> None:
        super().__init__()
        self.tower, self.proj, self.emotion = model.image_tower, model.image_proj, model.emotion_head

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = torch.nn.functional.normalize(self.proj(self.tower(pixels)), dim=-1)
        return feat, self.emotion(feat)


class _MatchGraph(nn.Module):
    def __init__(self, model: PBRModel) -> None:
        super().__init__()
        self.head = model.match_head

    def forward(self, dialogue: torch.Tensor, sticker: torch.Tensor) -> torch.Tensor:
        return self.head(dialogue, sticker)


def _linear(layer: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
    return layer.weight.detach().cpu().numpy().astype(np.float32), layer.bias.detach().cpu().numpy().astype(
        np.float32
    )


def _export_text(model: PBRModel, tokenizer_dir: Path, out: Path, quantize: bool, work: Path) -> bool:
    """Write the text tower's ONNX to ``out``; True when it is the fused graph (export/text_opt.py)."""
    hf_dir = work / "bert"
    model.text_tower.bert.save_pretrained(hf_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (tokenizer_dir / name).is_file():
            shutil.copy2(tokenizer_dir / name, hf_dir / name)
    return export_bert_dir(hf_dir, out, quantize, work)


def export_bert_dir(hf_dir: Path, out: Path, quantize: bool, work: Path) -> bool:
    """A Hugging Face BERT directory → ``last_hidden_state`` ONNX at ``out``: 4-bit word embeddings and int8
    MatMuls for a large vocabulary, else the fused int8 graph where the fusions apply, else plain dynamic int8
    (or fp32 without ``quantize``). True when it is the fused graph."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from optimum.exporters.onnx import main_export

    raw = work / "text-raw"
    main_export(
        str(hf_dir),
        output=str(raw),
        task="feature-extraction",
        opset=OPSET,
        do_validation=False,
        library_name="transformers",
        device="cpu",
    )
    if quantize and wants_q4_embeddings(vocab_size_of(hf_dir)):
        from export.q4 import quantize_int8_q4_embeddings
        from export.text_opt import NotConvertible, optimize_fp32_to_int8

        try:  # fused, the embeddings apart (docs/BENCHMARKS.md, "The multilingual tower fused")
            optimize_fp32_to_int8(raw / "model.onnx", out, q4_embeddings=True)
            return True
        except NotConvertible:
            quantize_int8_q4_embeddings(raw / "model.onnx", out)
    elif quantize:
        from export.text_opt import NotConvertible, optimize_fp32_to_int8

        try:  # fused graph: ~2x fewer ms per dialogue at equal R@1 (docs/BENCHMARKS.md)
            optimize_fp32_to_int8(raw / "model.onnx", out)
            return True
        except NotConvertible:  # not a BERT the fusions recognise: plain dynamic int8
            quantize_int8(raw / "model.onnx", out)
    else:
        shutil.copy2(raw / "model.onnx", out)
    return False


def _export_torch(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str]) -> None:
    module.eval()
    dynamic = {name: {0: "batch"} for name in inputs + outputs}
    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=inputs,
        output_names=outputs,
        dynamic_axes=dynamic,
        opset_version=OPSET,
        dynamo=False,
    )


def export_pbr(
    checkpoint: Path,
    out_dir: Path,
    quantize: bool = True,
    tokenizer_dir: Path | None = None,
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``out_dir`` atomically and return its manifest."""
    started = time.time()
    loaded = load_checkpoint(checkpoint)
    model, config = loaded.model.eval(), loaded.config
    # the tokenizer beside the text tower's weights (model.text_dir: e.g. the e5 tower), else MiniLM's
    tok_dir = Path(tokenizer_dir or config.text_dir or minilm_dir())
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".export-") as tmp:
        work, stage = Path(tmp) / "work", Path(tmp) / "stage"
        work.mkdir()
        stage.mkdir()
        fused = _export_text(model, tok_dir, stage / "text.onnx", quantize, work)
        shutil.copy2(tok_dir / "tokenizer.json", stage / "tokenizer.json")
        _export_image_and_match(model, config, stage, work, quantize)
        np.savez(stage / "heads.npz", **_heads(model, config))
        manifest = _manifest(loaded, checkpoint, stage, quantize, fused, metrics)
        manifest["export_seconds"] = round(time.time() - started, 1)
        (stage / "manifest.json").write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n"
        )
        if out_dir.exists():
            out_dir.rename(Path(tmp) / "old")
        stage.rename(out_dir)
    return manifest


def _export_image_and_match(model: Any, config: Any, stage: Path, work: Path, quantize: bool) -> None:
    """``image.onnx`` (fp32: it runs once per sticker) and ``match.onnx`` (int8 with ``quantize``)."""
    size = config.image_size
    with torch.no_grad():
        _export_torch(
            _ImageGraph(model),
            (torch.zeros(2, 3, size, size),),
            stage / "image.onnx",
            ["pixels"],
            ["sticker_embedding", "emotion_logits"],
        )
        d = config.embed_dim
        match_raw = work / "match.onnx" if quantize else stage / "match.onnx"
        _export_torch(
            _MatchGraph(model),
            (torch.zeros(2, d), torch.zeros(2, d)),
            match_raw,
            ["dialogue", "sticker"],
            ["match_logit"],
        )
    if quantize:  # its MLP is most of its 2 MB: int8 keeps the model directory under 40 MB
        quantize_int8(match_raw, stage / "match.onnx")


def _heads(model: Any, config: Any) -> dict[str, np.ndarray]:
    """The small linear layers the engine applies in numpy (``heads.npz``)."""
    heads: dict[str, np.ndarray] = {}
    heads["text_proj.weight"], heads["text_proj.bias"] = _linear(model.text_proj)
    if config.use_sticker_text:
        heads["sticker_text_proj.weight"], heads["sticker_text_proj.bias"] = _linear(model.sticker_text_proj)
        heads["text_gate.weight"], heads["text_gate.bias"] = _linear(model.text_gate)
    return heads


def _manifest(
    loaded: Any,
    checkpoint: Path,
    stage: Path,
    quantize: bool,
    fused: bool,
    metrics: dict[str, Any] | None,
) -> dict[str, Any]:
    """The manifest of the files in ``stage``: their hashes, the model's inputs, how it was trained."""
    model, config, extra = loaded.model, loaded.config, loaded.extra
    files = {
        "text": "text.onnx",
        "tokenizer": "tokenizer.json",
        "image": "image.onnx",
        "match": "match.onnx",
        "heads": "heads.npz",
    }
    digest = sha256_file_list([stage / n for n in sorted(files.values())])
    return {
        "format": MANIFEST_FORMAT,
        "kind": "pbr",
        "name": "PBR (Perceive before Respond) dual encoder",
        "version": f"pbr-{'int8' if quantize else 'fp32'}-{digest[:12]}",
        "files": files,
        "sha256": {name: sha256_file(stage / name) for name in files.values()},
        "embedding_dim": config.embed_dim,
        "max_tokens": config.max_tokens,
        "sticker_text_max_tokens": config.sticker_text_max_tokens,
        "use_sticker_text": config.use_sticker_text,
        "image": config.image_spec().to_dict(),
        "emotions": list(config.emotions),
        "opset": OPSET,
        "quantized": {
            "text": fused_label(
                text_quantization(quantize, wants_q4_embeddings(model.text_tower.bert.config.vocab_size)),
                fused,
            ),
            "image": None,
            "match": "int8-dynamic-per-channel" if quantize else None,
        },
        "training_config": {k: v for k, v in config.to_dict().items() if k != "text_config"},
        "training": {k: v for k, v in extra.items() if isinstance(v, str | int | float | bool | dict | list)},
        "validation_metrics": metrics if metrics is not None else extra.get("val_metrics"),
        "training_data": _training_data(extra),
        "checkpoint": Path(checkpoint).name,
        "versions": loaded.meta.get("versions", {}),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def fused_label(label: str | None, fused: bool) -> str | None:
    if not fused or label is None:
        return label
    from export.text_opt import quantization_label

    return quantization_label(label, quantize_attention=True)


def _training_data(extra: dict[str, Any]) -> dict[str, Any]:
    """Which corpora and art trained the checkpoint, with their licences (from its training config)."""
    from training.data.licences import training_data_summary

    cfg = extra.get("train_config")
    if isinstance(cfg, str):
        try:
            cfg = json.loads(cfg)
        except ValueError:
            cfg = None
    if not isinstance(cfg, dict):
        return {}
    return training_data_summary(cfg.get("data", {}).get("train", []))


def sha256_file_list(paths: list[Path]) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in paths:
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def new_version(old: str, hashes: dict[str, str], tag: str | None = None) -> str:
    """A rewritten directory's version: ``<kind>-<quant>[-<tags>]-<digest>`` → the same prefix (with ``tag``
    added once) and a digest of the new files' hashes, so that what was embedded by the old version is
    embedded again."""
    import hashlib

    digest = hashlib.sha256("".join(hashes[k] for k in sorted(hashes)).encode()).hexdigest()[:12]
    prefix = old.rsplit("-", 1)[0] if "-" in old else old
    if tag and not prefix.endswith(tag):
        prefix = f"{prefix}-{tag}"
    return f"{prefix}-{digest}"


def swap_in_staged(stage: Path, manifest: dict[str, Any], out_dir: Path, tmp: Path | str) -> None:
    """Write ``manifest`` into the directory staged at ``stage`` and put it in ``out_dir``'s place, atomically;
    the directory it replaces moves into ``tmp`` (a temporary directory beside it, deleted with it)."""
    (stage / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    if out_dir.exists():
        out_dir.rename(Path(tmp) / "old")
    stage.rename(out_dir)
