"""Benchmark: the shipped text tower beside each way toward its floor, interleaved in one process.

Run:  .venv/bin/python bench/text_tower_options.py [--model-dir models/default] [--data DATASET ...] [--rounds 300]

Graphs (all built here from the model directory's int8 ``text.onnx``, no checkpoint needed; export/text_opt.py):
- ``today``: the shipped graph, as the engine runs it;
- ``fused``: dequantised, onnxruntime's BERT fusions (EmbedLayerNorm, Attention, BiasGelu; not SkipLayerNorm),
  re-quantised dynamic int8 per channel (QAttention: its QKV weights in 7 bits), what export/text_opt.py ships
  (when today's graph is fused already, this row is today's and is left out);
- ``fused, fp32 attention``: the same with the fused Attention kept fp32;
- ``static-int8``: the dequantised graph's weight MatMuls quantised statically (QDQ, per channel), activations
  calibrated on training dialogues; a fused Attention stays fp32 (onnxruntime's QDQ quantiser has no Attention);
- ``fp32``: the dequantised fp32 graph (the reference the int8 graphs approximate).
Batching: per int8 graph, batches of ``--batch`` dialogues against the same dialogues alone, for the identity
of each dialogue's vector (dynamic per-tensor scales are shared by a batch; static ones are fixed) and for
dialogues/s both ways, with mixed lengths (as requests arrive) and with similar lengths (the best case).
Session options: the engine's (2 threads, no spinning, all graph optimisations but SkipLayerNorm fusion) for
every graph; for ``today`` and ``fused`` also the engine's before this change (SkipLayerNorm fused: the baseline
row every ratio is against), 1 thread, and 2 threads spinning.

Inputs: real dialogues from each ``--data`` set's *train* split, the last 8 turns as the ranker keeps them
(default: the shipped model's two validation corpora), at batch 1 and their real length (the engine pads a
batch only to its longest row). Each row runs A/B against the baseline (today's graph under the engine's
options before this change) in its own interleaved run, two sessions alive, alternating call by call and who
goes first, so noise from other work on the machine falls on both alike; p50/p99 over the rounds, and the ratio
of the two p50s of that run. Cosine: the projected dialogue embedding (mean pool + ``text_proj``, as the ranker
computes it) against the baseline's and the fp32 graph's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import engine  # noqa: E402, F401  (first: it configures numpy's BLAS threads as the bots run them)
from bench import _common  # noqa: E402

DEFAULT_DATA = ["var/datasets/tweeteval-emoji-gt", "var/datasets/meld-accompany"]
ENGINE = {"threads": 2, "spin": False, "skip_ln_fusion": False}
OPTIONS: dict[str, dict[str, Any]] = {
    "engine (2 threads, no spin, no SkipLayerNorm)": ENGINE,
    "engine before (SkipLayerNorm fused)": {"threads": 2, "spin": False, "skip_ln_fusion": True},
    "1 thread": {"threads": 1, "spin": False, "skip_ln_fusion": False},
    "2 threads, spinning": {"threads": 2, "spin": True, "skip_ln_fusion": False},
}
# the shipped graph under the engine's options before this round: what every other row is compared with
BASELINE = ("today", "engine before (SkipLayerNorm fused)")


def dialogues(paths: list[Path], n: int, offset: int = 0, max_turns: int = 8) -> dict[str, list[str]]:
    """``n`` dialogues of each dataset's train split, spread over it (every k-th sample from ``offset``), as
    the ranker reads them."""
    from engine.preprocess import dialogue_to_text
    from training.data.format import StickerDataset

    out = {}
    for p in paths:
        samples = StickerDataset.open(p).load("train")
        step = max(2, len(samples) // n)
        out[Path(p).name] = [
            dialogue_to_text([t.text for t in s.context], max_turns) for s in samples[offset::step][:n]
        ]
    return out


def static_int8(fp32: Path, dst: Path, feeds: list[dict[str, np.ndarray]]) -> None:
    """QDQ int8 of the weight MatMuls (per channel), activations calibrated (min/max) on ``feeds``."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    model = onnx.load(str(fp32))
    weights = {i.name for i in model.graph.initializer}
    nodes = [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    quantize_static(
        str(fp32),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_quantize=nodes,
    )


def build_graphs(text_onnx: Path, tmp: Path, calibration: list[dict[str, np.ndarray]]) -> dict[str, Path]:
    import onnx

    from export.text_opt import dequantize_dynamic_int8, is_fused, optimize_fp32_to_int8, quantize_fused

    fp32 = tmp / "fp32.onnx"
    onnx.save(dequantize_dynamic_int8(onnx.load(str(text_onnx))), str(fp32))
    graphs = {"today": text_onnx}
    if is_fused(text_onnx):  # shipped fused: its fp32 graph is fused already, and "fused" is today's
        graphs["fused, fp32 attention"] = tmp / "fused-fa.onnx"
        quantize_fused(fp32, graphs["fused, fp32 attention"], quantize_attention=False)
    else:
        graphs["fused"], graphs["fused, fp32 attention"] = tmp / "fused.onnx", tmp / "fused-fa.onnx"
        optimize_fp32_to_int8(fp32, graphs["fused"])
        optimize_fp32_to_int8(fp32, graphs["fused, fp32 attention"], quantize_attention=False)
    if calibration:
        graphs["static-int8"] = tmp / "static.onnx"
        static_int8(fp32, graphs["static-int8"], calibration)
    graphs["fp32"] = fp32
    return graphs


def session(path: Path, threads: int, spin: bool, skip_ln_fusion: bool) -> Any:
    import onnxruntime as ort

    from engine.ranking._onnx import DISABLED_OPTIMIZERS

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    disabled = [o for o in DISABLED_OPTIMIZERS if not (skip_ln_fusion and o == "SkipLayerNormFusion")]
    return ort.InferenceSession(
        str(path), sess_options=opts, providers=["CPUExecutionProvider"], disabled_optimizers=disabled
    )


def _embedder(sess: Any, heads: dict[str, np.ndarray]) -> Callable[[Any], np.ndarray]:
    names = [i.name for i in sess.get_inputs()]

    def run(enc: Any) -> np.ndarray:
        (out,) = sess.run(["last_hidden_state"], enc.as_feed(names))
        mask = enc.attention_mask[..., None].astype(np.float32)
        pooled = (out * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        if "text_proj.weight" in heads:
            pooled = pooled @ heads["text_proj.weight"].T + heads["text_proj.bias"]
        return pooled[0]

    return run


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))


def _interleaved(runs: dict[Any, Callable], encs: list[Any], rounds: int) -> dict[Any, list[float]]:
    """Seconds per call of each run, alternating (and alternating who goes first) round by round."""
    keys = list(runs)
    lat: dict[Any, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        enc = encs[r % len(encs)]
        for k in keys if r % 2 else keys[::-1]:
            t = time.perf_counter()
            runs[k](enc)
            lat[k].append(time.perf_counter() - t)
    return lat


def measure(graphs: dict[str, Path], inputs: dict[str, list[Any]], heads: dict, rounds: int) -> list[dict]:
    """Each (graph, options) row against the baseline, A/B in its own interleaved run: two sessions at a
    time (with a dozen sessions alive at once their weights evicted each other from the caches and the ranking
    changed from run to run); ``vs today`` is the ratio of the two p50s of that run."""
    pairs = [(g, o) for g in graphs for o in OPTIONS if OPTIONS[o] is ENGINE or g in ("today", "fused")]
    pairs.remove(BASELINE)
    fp32_key = ("fp32", next(iter(OPTIONS)))
    rows = []
    for corpus, encs in inputs.items():
        base_run = _embedder(session(graphs[BASELINE[0]], **OPTIONS[BASELINE[1]]), heads)
        ref = [base_run(e) for e in encs]
        fp32_run = _embedder(session(graphs["fp32"], **OPTIONS[fp32_key[1]]), heads)
        fp32 = [fp32_run(e) for e in encs]
        del fp32_run
        base_p50 = []
        for p in pairs:
            run = _embedder(session(graphs[p[0]], **OPTIONS[p[1]]), heads)
            vecs = [run(e) for e in encs]  # also the warm-up
            lat = _interleaved({"base": base_run, "row": run}, encs, rounds)
            arr, base = np.asarray(lat["row"]) * 1000, np.asarray(lat["base"]) * 1000
            base_p50.append(float(np.median(base)))
            rows.append(_row(corpus, p, encs, arr, float(np.median(base)), vecs, ref, fp32))
        base_row = _row(
            corpus, BASELINE, encs, np.asarray(base_p50), float(np.median(base_p50)), ref, ref, fp32
        )
        base_row["p99_ms"] = float("nan")  # per-run p50s only: its p99 is in each pair's JSON
        rows.insert(len(rows) - len(pairs), base_row)
    return rows


def _row(
    corpus: str, p: tuple[str, str], encs: list, arr: np.ndarray, base_p50: float, vecs, ref, fp32
) -> dict:
    cos_today = [_cos(a, b) for a, b in zip(vecs, ref, strict=True)]
    cos_fp32 = [_cos(a, b) for a, b in zip(vecs, fp32, strict=True)]
    return {
        "corpus": corpus,
        "graph": p[0],
        "options": p[1],
        "tokens_p50": float(np.median([e.attention_mask.sum() for e in encs])),
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
        "baseline_p50_ms_same_run": base_p50,
        "vs_today": float(np.percentile(arr, 50)) / base_p50,
        "cos_today_mean": float(np.mean(cos_today)),
        "cos_today_min": float(np.min(cos_today)),
        "cos_fp32_mean": float(np.mean(cos_fp32)),
    }


def padding_check(text_onnx: Path, tok: Any, texts: list[str], heads: dict) -> dict[str, float]:
    """Is the pooled output the same at the real length as padded to the token budget (masked pooling)?"""
    run = _embedder(session(text_onnx, **ENGINE), heads)
    worst, t_real, t_pad = 1.0, [], []
    for text in texts:
        real = tok.encode([text])
        padded = tok.encode([text])
        width = tok.max_tokens
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            a = getattr(padded, name)
            full = np.zeros((1, width), dtype=a.dtype)
            full[:, : a.shape[1]] = a
            setattr(padded, name, full)
        t = time.perf_counter()
        a = run(real)
        t_real.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = run(padded)
        t_pad.append(time.perf_counter() - t)
        worst = min(worst, _cos(a, b))
    return {
        "min_cosine_real_vs_padded": worst,
        "real_length_p50_ms": float(np.median(t_real) * 1000),
        "padded_p50_ms": float(np.median(t_pad) * 1000),
    }


def batching_check(
    graphs: dict[str, Path], tok: Any, texts: list[str], heads: dict, batch: int, rounds: int
) -> list[dict]:
    """Each int8 graph: ``batch`` dialogues of different lengths run as one batch (padded to the longest, as
    the engine pads) against each run alone. Per-tensor dynamic int8 quantises a batch with one scale for all
    its rows, so a dialogue's vector then depends on the others beside it; fixed (static) scales should not.
    Returns the worst per-dialogue cosine and largest absolute difference, and dialogues/s both ways
    (interleaved)."""
    out = []
    texts = sorted(texts, key=lambda t: len(tok.encode([t]).input_ids[0]))
    n = max(1, len(texts) // batch)
    groupings = {
        # as requests arrive: any lengths together
        "mixed lengths": [texts[i::n][:batch] for i in range(n)],
        # the best case for batching: neighbours in length, little padding
        "similar lengths": [texts[i * batch : (i + 1) * batch] for i in range(n)],
    }
    for name, path in graphs.items():
        if name == "fp32":
            continue
        sess = session(path, **ENGINE)  # one session per graph, for both groupings
        names = [i.name for i in sess.get_inputs()]

        def pooled(texts_: list[str], sess: Any = sess, names: list[str] = names) -> np.ndarray:
            enc = tok.encode(texts_)
            (h,) = sess.run(["last_hidden_state"], enc.as_feed(names))
            mask = enc.attention_mask[..., None].astype(np.float32)
            v = (h * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
            return (
                v @ heads["text_proj.weight"].T + heads["text_proj.bias"]
                if "text_proj.weight" in heads
                else v
            )

        for grouping, groups in groupings.items():
            worst_cos, worst_abs = 1.0, 0.0
            for g in groups:
                together = pooled(g)
                alone = np.stack([pooled([t])[0] for t in g])
                worst_cos = min(worst_cos, min(_cos(a, b) for a, b in zip(together, alone, strict=True)))
                worst_abs = max(worst_abs, float(np.abs(together - alone).max()))
            lat = _interleaved(
                {"batched": lambda g: pooled(g), "one by one": lambda g: [pooled([t]) for t in g]},
                groups,
                max(2, rounds // batch),
            )
            out.append(
                {
                    "graph": name,
                    "grouping": grouping,
                    "batch": batch,
                    "min_cosine_batched_vs_alone": worst_cos,
                    "max_abs_diff": worst_abs,
                    "batched_dialogues_per_s": batch / float(np.median(lat["batched"])),
                    "one_by_one_dialogues_per_s": batch / float(np.median(lat["one by one"])),
                }
            )
    return out


def main() -> None:
    from engine.preprocess import TextTokenizer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--data", type=Path, nargs="*", default=[REPO / d for d in DEFAULT_DATA])
    ap.add_argument("--inputs", type=int, default=64, help="dialogues per dataset")
    ap.add_argument("--calibration", type=int, default=256, help="training dialogues for static int8")
    ap.add_argument(
        "--rounds", type=int, default=300, help="per row; 0: only the padding and batching checks"
    )
    ap.add_argument("--batch", type=int, default=8, help="dialogues per batch in the batching check")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench")
    args = ap.parse_args()
    import json

    manifest = json.loads((args.model_dir / "manifest.json").read_text())
    tok = TextTokenizer(args.model_dir / manifest["files"]["tokenizer"], int(manifest.get("max_tokens", 64)))
    heads_path = args.model_dir / manifest["files"].get("heads", "heads.npz")
    heads = dict(np.load(heads_path)) if heads_path.is_file() else {}
    texts = dialogues([p for p in args.data if p.is_dir()], args.inputs)
    if not texts:
        from bench.text_tower import TURNS

        texts = {"20-turn synthetic": [" [SEP] ".join(TURNS[i:]) for i in range(12)]}
    inputs = {k: [tok.encode([t]) for t in v] for k, v in texts.items()}
    # calibration: other training dialogues than the timed ones (odd offsets), never validation or test
    calib = dialogues([p for p in args.data if p.is_dir()], args.calibration // max(1, len(args.data)), 1)
    feed = ["input_ids", "attention_mask", "token_type_ids"]
    calibration = [tok.encode([t]).as_feed(feed) for v in calib.values() for t in v]
    with tempfile.TemporaryDirectory() as tmp:
        graphs = build_graphs(args.model_dir / manifest["files"]["text"], Path(tmp), calibration)
        padding = padding_check(graphs["today"], tok, [t for v in texts.values() for t in v][:32], heads)
        batching = batching_check(
            graphs, tok, [t for v in texts.values() for t in v], heads, args.batch, args.rounds
        )
        rows = measure(graphs, inputs, heads, args.rounds) if args.rounds else []
    report(rows, padding, batching, manifest, args)


def report(
    rows: list[dict], padding: dict, batching: list[dict], manifest: dict, args: argparse.Namespace
) -> None:
    machine, cmd = _common.machine(), _common.command(__file__)
    lines = [
        f"### Text tower options ({manifest['version']}), batch 1, interleaved",
        "",
        f"Machine: {machine}. Command: `{cmd}`. Inputs: {args.inputs} training dialogues per corpus (last 8 "
        f"turns, real length); {args.rounds} rounds per row, each row A/B "
        "against the baseline (first row) in its own interleaved run; the baseline's p50 is the median over those "
        "runs, `vs today` the ratio of the two p50s in the row's own run.",
        "",
        "| corpus (median tokens) | graph | session options | p50 ms | p99 ms | p50 vs today | cosine to today "
        "(mean / min) | cosine to fp32 (mean) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['corpus']} ({r['tokens_p50']:.0f}) | {r['graph']} | {r['options']} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['vs_today']:.2f}× | {r['cos_today_mean']:.4f} / "
            f"{r['cos_today_min']:.4f} | {r['cos_fp32_mean']:.4f} |"
        )
    lines += [
        "",
        f"Padding: the pooled output at the real length vs padded to {manifest.get('max_tokens', 64)} tokens, "
        f"minimum cosine {padding['min_cosine_real_vs_padded']:.6f}; p50 {padding['real_length_p50_ms']:.2f} ms "
        f"real length vs {padding['padded_p50_ms']:.2f} ms padded.",
        "",
        f"Batching: {args.batch} dialogues of different lengths as one batch (padded to the longest) against "
        "each alone; the same session, interleaved.",
        "",
        "| graph | batch of | min cosine, batched vs alone | max abs difference | dialogues/s batched | one by one |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for b in batching:
        lines.append(
            f"| {b['graph']} | {b['grouping']} | {b['min_cosine_batched_vs_alone']:.6f} | {b['max_abs_diff']:.2e} | "
            f"{b['batched_dialogues_per_s']:.0f} | {b['one_by_one_dialogues_per_s']:.0f} |"
        )
    md = "\n".join(lines) + "\n"
    _common.write(
        args.out,
        "text_tower_options",
        md,
        {
            "machine": machine,
            "command": cmd,
            "model": manifest["version"],
            "padding": padding,
            "batching": batching,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
