"""Benchmark: the whole `/sticker` path through the engine (history read, text encoding, scoring, re-ranking,
suggestion write) over libraries of N enabled stickers, with a 20-turn history.

Run:  .venv/bin/python bench/suggest_path.py [--model-dir models/default] [--sizes 100 1000 10000]
Stickers are synthetic (distinct coloured shapes, each with an emoji); their embeddings are computed once per
library size (not timed: that is pack indexing, reported separately as stickers/s). Results → docs/bench/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
from bench.text_tower import TURNS, _peak_rss_mb  # noqa: E402


def _make_pack(folder: Path, n: int, seed: int) -> None:
    import emoji as emoji_pkg
    from PIL import Image, ImageDraw

    pool = [e for e in emoji_pkg.EMOJI_DATA if len(e) == 1][:400]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    meta = []
    for i in range(n):
        im = Image.new("RGBA", (96, 96), (0, 0, 0, 0))
        d = ImageDraw.Draw(im)
        c = (*(int(x) for x in rng.integers(0, 255, 3)), 255)
        box = sorted(rng.integers(0, 96, 2).tolist()), sorted(rng.integers(0, 96, 2).tolist())
        d.ellipse((box[0][0], box[1][0], box[0][1] + 4, box[1][1] + 4), fill=c)
        d.text((int(rng.integers(0, 60)), int(rng.integers(0, 80))), str(i), fill=(0, 0, 0, 255))
        name = f"s{i:05d}.png"
        im.save(folder / name)
        meta.append({"file": name, "id": f"s{i:05d}", "emoji": pool[i % len(pool)]})
    (folder / "pack.json").write_text(json.dumps({"name": folder.name, "stickers": meta}))


def _matmul_rate(tmp: Path) -> dict[str, float]:
    """GFLOP/s of one text-tower-shaped matrix multiply ([64, 384] x [384, 1536]) through onnxruntime, in fp32
    and dynamically quantised to int8 like the shipped text tower."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    m, k, n = 64, 384, 1536
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((k, n)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [w],
    )
    fp32 = tmp / "mm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), fp32)
    int8 = tmp / "mm-int8.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    x = np.random.default_rng(1).standard_normal((m, k)).astype(np.float32)
    rates = {}
    for name, path in (("fp32", fp32), ("int8", int8)):
        # the machine's best rate: back-to-back runs with onnxruntime's defaults (threads kept spinning)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for _ in range(50):
            sess.run(None, {"x": x})
        t, reps = time.perf_counter(), 400
        for _ in range(reps):
            sess.run(None, {"x": x})
        rates[name] = 2 * m * k * n * reps / (time.perf_counter() - t) / 1e9
    return rates


def _text_tower_gflop(
    tokens: int, layers: int = 6, hidden: int = 384, inner: int = 1536, out: int = 256
) -> float:
    """Multiply-adds ×2 of the dialogue tower (all-MiniLM-L6-v2 + projection) for one input of ``tokens``."""
    per_layer = 2 * tokens * (4 * hidden * hidden + 2 * hidden * inner) + 2 * 2 * tokens * tokens * hidden
    return (layers * per_layer + 2 * hidden * out) / 1e9


async def run_size(model_dir: Path, n: int, requests: int, work: Path, rates: dict[str, float]) -> dict:
    from engine.service import ChatRef, UserRef, open_service
    from migrations import upgrade_async

    home = work / f"home-{n}"
    settings = _common.settings(home, model_dir, history_turns=20, history_tokens=128)
    await upgrade_async(settings.db_url)
    service = await open_service(settings)
    chat = ChatRef("bench", "c1")
    try:
        _make_pack(work / f"pack{n}", n, seed=n)
        t = time.perf_counter()
        await service.add_pack(chat, work / f"pack{n}", name=f"pack{n}")
        index_s = time.perf_counter() - t
        for i, text in enumerate(TURNS):
            await service.record(chat, UserRef("bench", str(i % 3)), text)
        await service.suggest(chat, 5)  # warm: builds the chat's matrix
        lat = []
        for _ in range(requests):
            t = time.perf_counter()
            result = await service.suggest(chat, 5)
            lat.append(time.perf_counter() - t)
            assert len(result.items) == 5
        # concurrency: 8 chats at once, each with its own history
        chats = [ChatRef("bench", f"cc{j}") for j in range(8)]
        for c in chats:
            await service.enable_pack(c, f"pack{n}")
            for text in TURNS:
                await service.record(c, UserRef("bench", "1"), text)
            await service.suggest(c, 5)
        t = time.perf_counter()
        done = 0
        while time.perf_counter() - t < 5:
            await asyncio.gather(*(service.suggest(c, 5) for c in chats))
            done += len(chats)
        throughput = done / (time.perf_counter() - t)
        arr = np.asarray(lat) * 1000
        turns = await service.recent(chat)
        ranker = service.ranker
        query_text = ranker.dialogue_text([x.text for x in turns])
        tower = []
        for _ in range(requests):  # the text tower alone, on the same input, in this process
            t = time.perf_counter()
            ranker.embed_dialogues([query_text])
            tower.append(time.perf_counter() - t)
        budget = int(getattr(ranker, "manifest", {}).get("max_tokens", 64))
        tokens = min(budget, ranker.count_tokens(query_text))
        return {
            "tokens": int(tokens),
            "text_tower_p50_ms": float(np.percentile(np.asarray(tower) * 1000, 50)),
            "text_tower_gflop": _text_tower_gflop(int(tokens)),
            "floor_ms": _text_tower_gflop(int(tokens)) / rates["int8"] * 1000,
            "stickers": n,
            "p50_ms": float(np.percentile(arr, 50)),
            "p99_ms": float(np.percentile(arr, 99)),
            "throughput_req_s_8_chats": throughput,
            "indexing_stickers_per_s": n / index_s,
            "peak_rss_mb": _peak_rss_mb(),
        }
    finally:
        await service.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench")
    ap.add_argument("--one-size", type=int, help=argparse.SUPPRESS)  # internal: one size, in this process
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_size:
        rates = json.loads(os.environ["STICKERPICK_BENCH_RATES"])
        print(
            json.dumps(asyncio.run(run_size(args.model_dir, args.one_size, args.requests, args.work, rates)))
        )
        return
    manifest = json.loads((args.model_dir / "manifest.json").read_text())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rates = _matmul_rate(Path(tmp))
        base = [
            sys.executable,
            __file__,
            "--model-dir",
            str(args.model_dir),
            "--requests",
            str(args.requests),
        ]
        for n in args.sizes:  # each size in a fresh process: no state left over from the one before
            out = subprocess.run(
                [*base, "--one-size", str(n), "--work", tmp],
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "STICKERPICK_BENCH_RATES": json.dumps(rates)},
            ).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    machine, cmd = _common.machine(), _common.command(__file__)
    lines = [
        f"### `/sticker` end to end ({manifest['kind']} {manifest['version']})",
        "",
        f"Machine: {machine}. Command: `{cmd}`. History: 20 turns (truncated to the model's token budget); "
        "k = 5; PBR models re-rank their top 30 with the matching head.",
        "",
        "| enabled stickers | p50 ms | p99 ms | text tower alone p50 ms | floor ms | p50 / floor "
        "| requests/s (8 chats at once) | indexing stickers/s | peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['stickers']:,} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['text_tower_p50_ms']:.1f} | "
            f"{r['floor_ms']:.1f} | "
            f"{r['p50_ms'] / r['floor_ms']:.1f}× | {r['throughput_req_s_8_chats']:.0f} | "
            f"{r['indexing_stickers_per_s']:.0f} | {r['peak_rss_mb']:.0f} |"
        )
    r0 = rows[0]
    lines += [
        "",
        f"Floor: the text tower's {r0['text_tower_gflop']:.2f} GFLOP for the {r0['tokens']}-token dialogue over the "
        f"matrix-multiply rate measured in the same run through onnxruntime ([64, 384] × [384, 1536]: "
        f"{rates['int8']:.0f} GFLOP/s int8, {rates['fp32']:.0f} GFLOP/s fp32).",
    ]
    md = "\n".join(lines) + "\n"
    _common.write(
        args.out,
        f"suggest_path-{manifest['kind']}",
        md,
        {
            "machine": machine,
            "command": cmd,
            "model": manifest["version"],
            "matmul_gflops": rates,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
