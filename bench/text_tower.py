"""Benchmark: the dialogue (text) tower in PyTorch fp32 vs ONNX fp32 vs ONNX int8, and the whole suggest() path.

Run:  .venv/bin/python bench/text_tower.py [--model-dir models/default] [--out docs/bench]
Each backend runs in its own subprocess (clean peak-memory numbers); results go to JSON and Markdown with the
machine and the command. Latency: batch 1, a 20-turn dialogue truncated to the model's token budget, p50/p99
over --runs calls after a warm-up; throughput: batch 32 dialogues per second.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import engine  # noqa: E402, F401  (first: it configures numpy's BLAS threads as the bots run them)
from bench import _common  # noqa: E402

TURNS = [
    "hey are you coming tonight?",
    "maybe, depends on work",
    "come on it's friday!!",
    "fine fine, what time",
    "8 at the usual place",
    "is sam coming too",
    "yes and she's bringing her new boyfriend",
    "oh no not the guy with the guitar",
    "haha yes that one",
    "i'm already regretting this",
    "you'll survive",
    "will there be food at least",
    "pizza, i ordered three",
    "ok now you have my attention",
    "also karaoke after",
    "absolutely not",
    "you said that last time and sang for two hours",
    "lies. slander.",
    "i have videos",
    "delete them immediately",
]
# The same 20 turns in German: the dialogue a routed model (engine/language.py) sends to its multilingual tower.
TURNS_DE = [
    "hey, kommst du heute abend?",
    "vielleicht, kommt auf die arbeit an",
    "komm schon, es ist freitag!!",
    "na gut, wann denn",
    "um 8 am üblichen ort",
    "kommt sam auch",
    "ja, und sie bringt ihren neuen freund mit",
    "oh nein, doch nicht der typ mit der gitarre",
    "haha doch, genau der",
    "ich bereue es jetzt schon",
    "du wirst es überleben",
    "gibt es wenigstens was zu essen",
    "pizza, ich habe drei bestellt",
    "ok, jetzt hast du meine aufmerksamkeit",
    "danach noch karaoke",
    "auf keinen fall",
    "das hast du letztes mal auch gesagt und dann zwei stunden gesungen",
    "lügen. verleumdung.",
    "ich habe videos",
    "lösch sie sofort",
]


def _peak_rss_mb() -> float:
    """This process's peak resident size (VmHWM: reset by exec, unlike getrusage's maxrss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _percentiles(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples) * 1000
    return {"p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99))}


def worker(backend: str, model_dir: Path, runs: int, threads: int) -> dict:
    """Runs in a subprocess: time one backend."""
    from engine.preprocess import TextTokenizer, dialogue_to_text

    manifest = json.loads((model_dir / "manifest.json").read_text())
    max_tokens = int(manifest.get("max_tokens", 128))
    tok = TextTokenizer(model_dir / "tokenizer.json", max_tokens)
    text = dialogue_to_text(TURNS)
    batch32 = [dialogue_to_text(TURNS[: i % 20 + 1]) for i in range(32)]
    base_rss = _peak_rss_mb()
    if backend == "torch-fp32":
        import torch

        torch.set_num_threads(threads)
        from training.model._towers import load_bert, mean_pool

        if os.environ.get("BENCH_CHECKPOINT"):
            from training.model import load_checkpoint

            bert = load_checkpoint(os.environ["BENCH_CHECKPOINT"]).model.text_tower.bert.eval()
        else:
            bert = load_bert().eval()

        def run(texts: list[str]) -> np.ndarray:
            enc = tok.encode(texts)
            with torch.inference_mode():
                out = bert(
                    input_ids=torch.from_numpy(enc.input_ids),
                    attention_mask=torch.from_numpy(enc.attention_mask),
                    token_type_ids=torch.from_numpy(enc.token_type_ids),
                ).last_hidden_state
                return mean_pool(out, torch.from_numpy(enc.attention_mask)).numpy()
    else:
        from engine.ranking import OnnxTextEncoder

        path = (
            Path(os.environ["BENCH_ONNX"])
            if backend == "onnx-fp32"
            else model_dir / manifest["files"]["text"]
        )
        output = (
            manifest.get("output", "last_hidden_state") if backend == "onnx-int8" else "last_hidden_state"
        )
        enc = OnnxTextEncoder(path, model_dir / "tokenizer.json", max_tokens, output, threads)

        def run(texts: list[str]) -> np.ndarray:
            return enc.encode(texts, normalise=False)

    for _ in range(5):
        run([text])
    lat = []
    for _ in range(runs):
        t = time.perf_counter()
        run([text])
        lat.append(time.perf_counter() - t)
    t = time.perf_counter()
    n = 0
    while time.perf_counter() - t < 3.0:
        run(batch32)
        n += 32
    thr = n / (time.perf_counter() - t)
    vec = run([text])[0]
    peak = _peak_rss_mb()
    return {
        "backend": backend,
        **_percentiles(lat),
        "throughput_b32_per_s": thr,
        "peak_rss_mb": peak,
        "model_rss_mb": peak - base_rss,
        "tokens": int(tok.encode([text]).attention_mask.sum()),
        "vector": vec.tolist(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=REPO / "models" / "baseline-minilm")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--checkpoint", type=Path, default=None, help="PBR model dirs: the checkpoint they came from"
    )
    ap.add_argument("--worker", default=None)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.model_dir, args.runs, args.threads)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_fp32(args.model_dir, Path(tmp), args.checkpoint)
        results = []
        for backend in ("torch-fp32", "onnx-fp32", "onnx-int8"):
            env = dict(os.environ, BENCH_ONNX=str(fp32), PYTHONPATH=str(REPO))
            if args.checkpoint:
                env["BENCH_CHECKPOINT"] = str(args.checkpoint)
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    backend,
                    "--model-dir",
                    str(args.model_dir),
                    "--runs",
                    str(args.runs),
                    "--threads",
                    str(args.threads),
                ],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    ref = np.asarray(results[0]["vector"])
    for r in results:
        v = np.asarray(r.pop("vector"))
        r["cosine_to_torch"] = float(v @ ref / (np.linalg.norm(v) * np.linalg.norm(ref)))
    report(results, args)


def export_fp32(model_dir: Path, tmp: Path, checkpoint: Path | None) -> Path:
    """The fp32 ONNX of the same text tower (the model dir ships int8)."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    if manifest["kind"] == "text-baseline":
        from export.baseline import export_text_baseline

        export_text_baseline(tmp / "fp32", quantize=False, library="transformers")
        return tmp / "fp32" / "text.onnx"
    if checkpoint is None:
        raise SystemExit("a PBR model dir needs --checkpoint (the .pt it was exported from)")
    from export.pbr import export_pbr

    export_pbr(checkpoint, tmp / "fp32", quantize=False)
    return tmp / "fp32" / "text.onnx"


def report(results: list[dict], args: argparse.Namespace) -> None:
    torch_p50 = results[0]["p50_ms"]
    machine, cmd = _common.machine(f"{args.threads} threads"), _common.command(__file__)
    lines = [
        f"### Text tower ({args.model_dir.name}): PyTorch fp32 vs ONNX fp32 vs ONNX int8",
        "",
        f"Machine: {machine}. Command: `{cmd}`. Input: a 20-turn dialogue, {results[0]['tokens']} tokens.",
        "",
        "| backend | p50 ms (batch 1) | p99 ms | speed-up vs torch (p50) | dialogues/s (batch 32) | peak RSS MB | cosine to torch |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {torch_p50 / r['p50_ms']:.2f}× | "
            f"{r['throughput_b32_per_s']:.0f} | {r['peak_rss_mb']:.0f} | {r['cosine_to_torch']:.4f} |"
        )
    md = "\n".join(lines) + "\n"
    _common.write(
        args.out,
        f"text_tower-{args.model_dir.name}",
        md,
        {"machine": machine, "command": cmd, "results": results},
    )


if __name__ == "__main__":
    main()
