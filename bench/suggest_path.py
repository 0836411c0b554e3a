"""Benchmark: the whole `/sticker` path through the engine (history read, text encoding, scoring, re-ranking,
suggestion write) over libraries of N enabled stickers, with a 20-turn history.

Run:  .venv/bin/python bench/suggest_path.py [--model-dir models/default] [--sizes 100 1000 10000]
Stickers are synthetic (distinct coloured shapes, each with an emoji); their embeddings are computed once per
library size (not timed: that is pack indexing, reported separately as stickers/s). Every request is timed
as served and through its naive alternative (every statement its own aiosqlite round trip, one transaction
per suggestion), interleaved; each reports the time beyond the text tower (the request's total minus the
tower's own time in it). Results → docs/bench/.
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
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import engine  # noqa: E402, F401  (first: it configures numpy's BLAS threads as the bots run them)
from bench import _common  # noqa: E402
from bench.text_tower import TURNS, TURNS_DE, _peak_rss_mb  # noqa: E402


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


class _TimedRanker:
    """The served ranker, with the time of its last text-tower and matching-head call: what a request spends
    beyond the model is its total minus these."""

    def __init__(self, ranker: Any) -> None:
        self._ranker = ranker
        self.tower_s = 0.0
        self.head_s = 0.0

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._ranker, name)
        if name == "rerank_scores":
            return self._rerank
        return value

    def embed_dialogues(self, texts: Any) -> Any:
        t = time.perf_counter()
        out = self._ranker.embed_dialogues(texts)
        self.tower_s = time.perf_counter() - t
        return out

    def _rerank(self, dialogue: Any, stickers: Any) -> Any:
        t = time.perf_counter()
        out = self._ranker.rerank_scores(dialogue, stickers)
        self.head_s = time.perf_counter() - t
        return out


def _use(service: Any, variant: str, dbs: dict[str, Any]) -> None:
    """Switch the request path: "one-hop" (as served: the chat read, the model and the suggestion write in
    one worker-thread call), "two-hop" (the path before: the chat read a hop of its own, then the model with
    the write) or "per-statement" (the naive alternative: every statement through aiosqlite's thread, one
    transaction per suggestion, group-committed)."""
    service._suggestions.db = service._suggester.db = dbs[variant]
    service._suggestions._batcher.max_batch = 1 if variant == "per-statement" else 64
    service._suggester.write_in_model_thread = variant != "per-statement"
    service._suggester.read_in_model_thread = variant == "one-hop"


VARIANTS = ("one-hop", "two-hop", "per-statement")


async def _latencies(service: Any, chat: Any, timed: _TimedRanker, dbs: dict, requests: int) -> dict:
    """Interleaved: each round runs every variant once, in alternating order."""
    out: dict[str, dict[str, list[float]]] = {v: {"total": [], "beyond": [], "head": []} for v in VARIANTS}
    for i in range(requests):
        for variant in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
            _use(service, variant, dbs)
            t = time.perf_counter()
            result = await service.suggest(chat, 5)
            total = time.perf_counter() - t
            assert len(result.items) == 5
            out[variant]["total"].append(total)
            out[variant]["beyond"].append(total - timed.tower_s)
            out[variant]["head"].append(timed.head_s)
    return out


async def _throughput(service: Any, chats: list, dbs: dict, rounds: int, seconds: float) -> dict[str, float]:
    """Requests/s with every chat asking at once, again and again for ``seconds``; median of ``rounds``
    blocks per variant, the variants alternating."""
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for i in range(rounds):
        for variant in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
            _use(service, variant, dbs)
            t, done = time.perf_counter(), 0
            while time.perf_counter() - t < seconds:
                await asyncio.gather(*(service.suggest(c, 5) for c in chats))
                done += len(chats)
            rates[variant].append(done / (time.perf_counter() - t))
    return {v: float(np.median(r)) for v, r in rates.items()}


# Where a served request's time goes: each stage timed where it runs, p50 over the requests. The worker-thread
# parts (the statement, the transaction) are timed inside the thread, so the hop around them is the difference.
STAGES = (
    ("serve", "the request's one worker-thread call"),
    ("read_statement", "the chat read: its statement"),
    ("model", "tower + scoring + matching head"),
    ("tower", "the text tower"),
    ("matching_head", "the matching head"),
    ("write", "the suggestion write"),
    ("write_transaction", "its transaction"),
    ("write_statements", "its statements (details, claim, inserts)"),
)
TOP_STAGES = {"serve", "rest", "total"}
SERVE_PARTS = {"read_statement", "model", "write"}


def _timer(store: list[float], fn: Any) -> Any:
    if asyncio.iscoroutinefunction(fn):

        async def timed_async(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return await fn(*a, **k)
            finally:
                store.append(time.perf_counter() - t)

        return timed_async

    def timed(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            store.append(time.perf_counter() - t)

    return timed


async def _stages(service: Any, chat: Any, timed: _TimedRanker, dbs: dict, requests: int) -> dict[str, float]:
    """p50 ms of each of ``STAGES`` over ``requests`` served requests, and what is left of the request (the
    event loop, the hop around the worker-thread call and Python)."""
    _use(service, "one-hop", dbs)
    sg, sv = service._suggester, service._suggestions
    targets = {
        "serve": (sg, "_serve_here"),
        "read_statement": (sg.db, "_read_sync"),
        "model": (sg, "_score"),
        "write": (sv, "save_here"),
        "write_transaction": (sv.db, "_write_sync"),
        "write_statements": (sv, "_write_all"),
    }
    times: dict[str, list[float]] = {k: [] for k, _ in STAGES}
    totals: list[float] = []
    saved = {k: getattr(obj, name) for k, (obj, name) in targets.items()}
    for k, (obj, name) in targets.items():
        setattr(obj, name, _timer(times[k], saved[k]))
    try:
        for _ in range(requests):
            t = time.perf_counter()
            await service.suggest(chat, 5)
            totals.append(time.perf_counter() - t)
            times["tower"].append(timed.tower_s)
            times["matching_head"].append(timed.head_s)
    finally:
        for obj, name in targets.values():
            if name in vars(obj):
                delattr(obj, name)  # the bound method again, not a wrapper around it
    out = {k: _ms(v, 50) if v else float("nan") for k, v in times.items()}
    out["total"] = _ms(totals, 50)
    out["rest"] = out["total"] - out["serve"]
    return out


def _ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


async def run_size(
    model_dir: Path,
    n: int,
    requests: int,
    work: Path,
    rates: dict[str, float],
    chats: int,
    language: str = "en",
) -> dict:
    turns_of = TURNS_DE if language == "de" else TURNS
    from engine.db import OneShot
    from engine.service import ChatRef, UserRef, open_service
    from migrations import upgrade_async

    home = work / f"home-{n}"
    indexed = (home / "stickerpick.db").exists()  # a --work folder from an earlier run: indexed already
    # a 1 ms cooldown: every request claims its chat's slot as in production, and none waits for it
    settings = _common.settings(
        home, model_dir, history_turns=20, history_tokens=128, sticker_cooldown_s=1e-3
    )
    await upgrade_async(settings.db_url)
    service = await open_service(settings)
    chat = ChatRef("bench", "c1")
    dbs = {
        "one-hop": service._suggester.db,
        "two-hop": service._suggester.db,
        "per-statement": OneShot(service.db_engine, threaded=False),
    }
    try:
        index_s = None
        if not indexed:
            _make_pack(work / f"pack{n}", n, seed=n)
            t = time.perf_counter()
            await service.add_pack(chat, work / f"pack{n}", name=f"pack{n}")
            index_s = time.perf_counter() - t
            for i, text in enumerate(turns_of):
                await service.record(chat, UserRef("bench", str(i % 3)), text)
        timed = _TimedRanker(service.ranker)
        service.ranker = timed
        for variant in VARIANTS:  # warm: the chat's matrix, both paths' connections
            _use(service, variant, dbs)
            await service.suggest(chat, 5)
        lat = await _latencies(service, chat, timed, dbs, requests)
        stages = await _stages(service, chat, timed, dbs, requests)
        group = [ChatRef("bench", f"cc{j}") for j in range(chats)]
        for c in group:
            if not await service.recent(c):  # new here (not from an earlier run's --work folder)
                await service.enable_pack(c, f"pack{n}")
                for text in turns_of:
                    await service.record(c, UserRef("bench", "1"), text)
            await service.suggest(c, 5)
        throughput = await _throughput(service, group, dbs, rounds=6, seconds=1.5)
        service.ranker = ranker = timed._ranker
        turns = await service.recent(chat)
        query_text = ranker.dialogue_text([x.text for x in turns])
        tower = []
        for _ in range(requests):  # the text tower alone, on the same input, in this process
            t = time.perf_counter()
            ranker.embed_dialogues([query_text])
            tower.append(time.perf_counter() - t)
        manifest = getattr(ranker, "manifest", {})
        budget, layers, counter = int(manifest.get("max_tokens", 64)), 6, ranker.count_tokens
        tower_name = ranker.dialogue_tower(query_text) if hasattr(ranker, "dialogue_tower") else "english"
        if tower_name == "multilingual":  # the routed model's other tower: its own tokens and depth
            routing = manifest["dialogue_routing"]
            budget, layers = int(routing["max_tokens"]), int(routing["multilingual_tower"]["layers"])
            counter = ranker.multilingual.tokenizer.count_tokens
        tokens = min(budget, counter(query_text))
        gflop = _text_tower_gflop(int(tokens), layers=layers)
        row: dict[str, Any] = {
            "language": language,
            "dialogue_tower": tower_name,
            "tokens": int(tokens),
            "text_tower_p50_ms": _ms(tower, 50),
            "text_tower_gflop": gflop,
            "floor_ms": gflop / rates["int8"] * 1000,
            "stickers": n,
            "chats_at_once": chats,
            "indexing_stickers_per_s": n / index_s if index_s else None,
            "peak_rss_mb": _peak_rss_mb(),
            "stages_p50_ms": stages,
        }
        for v in VARIANTS:
            key = v.replace("-", "_")
            row[key] = {
                "p50_ms": _ms(lat[v]["total"], 50),
                "p99_ms": _ms(lat[v]["total"], 99),
                "beyond_tower_p50_ms": _ms(lat[v]["beyond"], 50),
                "beyond_tower_p99_ms": _ms(lat[v]["beyond"], 99),
                "matching_head_p50_ms": _ms(lat[v]["head"], 50),
                "requests_per_s": throughput[v],
            }
        return row
    finally:
        dbs["per-statement"].close()
        await service.close()


def _tables(manifest: dict, rows: list[dict], rates: dict[str, float], requests: int) -> str:
    machine, cmd = _common.machine(), _common.command(__file__)
    chats = rows[0]["chats_at_once"]
    lines = [
        f"### `/sticker` end to end ({manifest['kind']} {manifest['version']})",
        "",
        f"Machine: {machine}. Command: `{cmd}`. History: 20 turns (truncated to the model's token budget); "
        "k = 5; PBR models re-rank their top 30 with the matching head; every request claims its chat's "
        "cooldown slot (1 ms) and writes its suggestion, as in production.",
        "",
        "| enabled stickers | p50 ms | p99 ms | text tower alone p50 ms | floor ms | p50 / floor "
        f"| requests/s ({chats} chats at once) | indexing stickers/s | peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        f = r["one_hop"]
        index = f"{r['indexing_stickers_per_s']:.0f}" if r["indexing_stickers_per_s"] else "–"
        lines.append(
            f"| {r['stickers']:,} | {f['p50_ms']:.1f} | {f['p99_ms']:.1f} | {r['text_tower_p50_ms']:.1f} | "
            f"{r['floor_ms']:.1f} | {f['p50_ms'] / r['floor_ms']:.1f}× | {f['requests_per_s']:.0f} | "
            f"{index} | {r['peak_rss_mb']:.0f} |"
        )
    r0 = rows[0]
    lines += [
        "",
        f"Floor: the text tower's {r0['text_tower_gflop']:.2f} GFLOP for the {r0['tokens']}-token dialogue over the "
        f"matrix-multiply rate measured in the same run through onnxruntime ([64, 384] × [384, 1536]: "
        f"{rates['int8']:.0f} GFLOP/s int8, {rates['fp32']:.0f} GFLOP/s fp32).",
        "",
        "#### The request beyond the text tower, beside its naive alternative",
        "",
        "Per request: its total time minus the text tower's own time in that request (the matching head, the "
        "scoring, the database, the thread hops and Python remain). *one-hop*: as served (the chat read, "
        "tower + scoring + head and the suggestion's transaction in one worker-thread call); *two-hop*: the "
        "path before (the chat read a worker-thread call of its own, then the model with the write); "
        "*per-statement*: every statement through aiosqlite's thread, one transaction per suggestion. "
        f"Interleaved, request by request ({requests} each); requests/s: {chats} chats asking at once, "
        "median of 6 alternating 1.5 s blocks.",
        "",
        "| enabled stickers | path | p50 ms | p99 ms | beyond the tower p50 ms | p99 ms "
        f"| of which the matching head p50 ms | requests/s ({chats} chats) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        for v in VARIANTS:
            x = r[v.replace("-", "_")]
            lines.append(
                f"| {r['stickers']:,} | {v} | {x['p50_ms']:.1f} | {x['p99_ms']:.1f} | "
                f"{x['beyond_tower_p50_ms']:.2f} | {x['beyond_tower_p99_ms']:.2f} | "
                f"{x['matching_head_p50_ms']:.2f} | {x['requests_per_s']:.0f} |"
            )
    lines += [
        "",
        "#### Where a served request's time goes",
        "",
        f"Each stage timed where it runs, p50 over {requests} more served requests (so the rows do not add up "
        "exactly); the parts of the worker-thread call are timed inside it (what the call holds beyond them: "
        "the cooldown check, the matrix lookup, the history window). *The rest*: the request's p50 minus its "
        "worker-thread call (the event loop, the hop there and back, Python).",
        "",
        "| stage | " + " | ".join(f"{r['stickers']:,} stickers, p50 ms" for r in rows) + " |",
        "|---|" + "---:|" * len(rows),
    ]
    for key, label in (*STAGES, ("rest", "the rest"), ("total", "the whole request")):
        indent = "" if key in TOP_STAGES else ("· " if key in SERVE_PARTS else "· · ")
        lines.append(
            f"| {indent}{label} | " + " | ".join(f"{r['stages_p50_ms'][key]:.2f}" for r in rows) + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--chats", type=int, default=32, help="chats asking at once for requests/s")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench")
    ap.add_argument(
        "--language",
        choices=["en", "de"],
        default="en",
        help="the 20-turn history in English or German (a routed model reads German with its other tower)",
    )
    ap.add_argument(
        "--work",
        type=Path,
        help="keep the libraries here (a library indexed by an earlier run is reused: indexing is not timed)",
    )
    ap.add_argument("--one-size", type=int, help=argparse.SUPPRESS)  # internal: one size, in this process
    args = ap.parse_args()
    if args.one_size:
        rates = json.loads(os.environ["STICKERPICK_BENCH_RATES"])
        row = asyncio.run(
            run_size(
                args.model_dir, args.one_size, args.requests, args.work, rates, args.chats, args.language
            )
        )
        print(json.dumps(row))
        return
    manifest = json.loads((args.model_dir / "manifest.json").read_text())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        rates = _matmul_rate(Path(tmp))
        base = [
            sys.executable,
            __file__,
            "--model-dir",
            str(args.model_dir),
            "--requests",
            str(args.requests),
            "--chats",
            str(args.chats),
            "--language",
            args.language,
        ]
        for n in args.sizes:  # each size in a fresh process: no state left over from the one before
            out = subprocess.run(
                [*base, "--one-size", str(n), "--work", str(work)],
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "STICKERPICK_BENCH_RATES": json.dumps(rates)},
            ).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    md = _tables(manifest, rows, rates, args.requests)
    _common.write(
        args.out,
        f"suggest_path-{manifest['kind']}" + ("" if args.language == "en" else f"-{args.language}"),
        md,
        {
            "machine": _common.machine(),
            "command": _common.command(__file__),
            "model": manifest["version"],
            "matmul_gflops": rates,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
