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
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import engine  # noqa: E402, F401  (first: it configures numpy's BLAS threads as the bots run them)
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


async def run_size(model_dir: Path, n: int, requests: int, work: Path) -> dict:
    from engine.service import ChatRef, UserRef, open_service
    from engine.settings import Settings
    from migrations import upgrade_async

    home = work / f"home-{n}"
    settings = Settings(
        _env_file=None,
        home=home,
        model_dir=model_dir,
        default_packs=[],
        max_pack_stickers=10_000,
        sticker_cooldown_s=0,
        history_turns=20,
        history_tokens=128,
    )
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
        return {
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
    args = ap.parse_args()
    manifest = json.loads((args.model_dir / "manifest.json").read_text())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            rows.append(asyncio.run(run_size(args.model_dir, n, args.requests, Path(tmp))))
            print(rows[-1], flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    cmd = "python " + " ".join([str(Path(__file__).relative_to(REPO)), *sys.argv[1:]])
    lines = [
        f"### `/sticker` end to end ({manifest['kind']} {manifest['version']})",
        "",
        f"Machine: {machine}. Command: `{cmd}`. History: 20 turns (truncated to the model's token budget); "
        "k = 5; PBR models re-rank their top 30 with the matching head.",
        "",
        "| enabled stickers | p50 ms | p99 ms | requests/s (8 chats at once) | indexing stickers/s | peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['stickers']:,} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['throughput_req_s_8_chats']:.0f} | "
            f"{r['indexing_stickers_per_s']:.0f} | {r['peak_rss_mb']:.0f} |"
        )
    md = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"suggest_path-{manifest['kind']}.md").write_text(md)
    (args.out / f"suggest_path-{manifest['kind']}.json").write_text(
        json.dumps({"machine": machine, "command": cmd, "model": manifest["version"], "rows": rows}, indent=2)
    )
    print(md)


if __name__ == "__main__":
    main()
