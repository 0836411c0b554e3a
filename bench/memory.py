"""Benchmark: resident memory of a running bot with the default model and 10,000 stickers.

Run:  .venv/bin/python bench/memory.py [--stickers 10000] [--chats 200] [--seconds 20]
A first process indexes a library of N synthetic stickers into a fresh database (not measured: that is pack
indexing). Then a fresh process runs the engine as a bot does (``open_service`` on the serving model, the
library enabled in many chats, messages and ``/sticker`` requests from all of them for a while) and reports its
resident size once warm (RSS now, and the peak). It runs twice in the same run: as shipped, and with the naive
choices beside it (every chat its own sticker matrix, the image tower loaded at start). Results →
docs/bench/memory.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import engine  # noqa: E402, F401  (first: it configures numpy's BLAS threads as the bots run them)
from bench import _common  # noqa: E402
from bench.text_tower import TURNS  # noqa: E402


def _rss_mb() -> tuple[float, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def build(home: Path, model_dir: Path, n: int) -> None:
    from bench.suggest_path import _make_pack
    from engine.service import ChatRef, open_service
    from migrations import upgrade_async

    settings = _common.settings(home, model_dir)
    await upgrade_async(settings.db_url)
    service = await open_service(settings)
    try:
        _make_pack(home.parent / "pack", n, seed=n)
        await service.add_pack(ChatRef("bench", "setup"), home.parent / "pack", name="big")
    finally:
        await service.close()


async def serve(home: Path, model_dir: Path, chats: int, seconds: float, naive: bool) -> dict:
    from engine.service import ChatRef, UserRef, open_service

    settings = _common.settings(home, model_dir, matrix_cache_mb=1e6 if naive else 128.0)
    start_rss = _rss_mb()[0]
    service = await open_service(settings)
    if naive:  # the naive alternative: every chat builds its own matrix, the image tower loaded up front
        service.ranker.image_session()
        service.matrices.shared = False
    loaded_rss = _rss_mb()[0]
    refs = [ChatRef("bench", f"chat{i}") for i in range(chats)]
    try:
        for ref in refs:
            await service.enable_pack(ref, "big")
            for j, text in enumerate(TURNS[:6]):
                await service.record(ref, UserRef("bench", str(j % 3)), text)
        if naive:  # every chat's own matrix exists before the measurement, as if each had asked once
            for ref in refs:
                assert (await service.suggest(ref, 5)).items
        stop = time.perf_counter() + seconds
        requests = 0
        while time.perf_counter() < stop:
            for i, ref in enumerate(refs):
                await service.record(ref, UserRef("bench", str(i % 3)), TURNS[i % len(TURNS)])
                result = await service.suggest(ref, 5)
                assert result.items, result.reason
                requests += 1
                if time.perf_counter() >= stop:
                    break
        rss, peak = _rss_mb()
        return {
            "mode": "naive" if naive else "as shipped",
            "stickers": None,
            "chats": chats,
            "requests": requests,
            "python_start_mb": start_rss,
            "after_open_mb": loaded_rss,
            "steady_rss_mb": rss,
            "peak_rss_mb": peak,
            "matrices": len(service.matrices),
            "matrix_mb": service.matrices.nbytes / 2**20,
        }
    finally:
        await service.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--stickers", type=int, default=10_000)
    ap.add_argument("--chats", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench")
    ap.add_argument("--role", choices=["main", "build", "serve", "serve-naive"], default="main")
    ap.add_argument("--home", type=Path)
    args = ap.parse_args()
    if args.role == "build":
        asyncio.run(build(args.home, args.model_dir, args.stickers))
        return
    if args.role.startswith("serve"):
        row = asyncio.run(
            serve(args.home, args.model_dir, args.chats, args.seconds, args.role == "serve-naive")
        )
        print(json.dumps(row))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        base = [sys.executable, __file__, "--model-dir", str(args.model_dir), "--home", str(home)]
        base += ["--stickers", str(args.stickers), "--chats", str(args.chats), "--seconds", str(args.seconds)]
        print(f"indexing {args.stickers:,} stickers…", flush=True)
        subprocess.run([*base, "--role", "build"], check=True)
        for role in ("serve", "serve-naive"):  # each in a fresh process: its own resident size
            out = subprocess.run([*base, "--role", role], check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            row["stickers"] = args.stickers
            rows.append(row)
            print(row, flush=True)
    manifest = json.loads((args.model_dir / "manifest.json").read_text())
    machine, cmd = _common.machine(), _common.command(__file__)
    lines = [
        f"### Resident memory of a running bot ({manifest['version']}, {args.stickers:,} stickers)",
        "",
        f"Machine: {machine}. Command: `{cmd}`. {args.chats} chats with the library enabled, messages and "
        f"`/sticker` from all of them for {args.seconds:.0f} s, measured in a fresh process (RSS from "
        "/proc/self/status).",
        "",
        "| mode | after start MB | steady RSS MB | peak RSS MB | requests served |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['after_open_mb']:.0f} | {r['steady_rss_mb']:.0f} | {r['peak_rss_mb']:.0f} | "
            f"{r['requests']:,} |"
        )
    md = "\n".join(lines) + "\n"
    _common.write(args.out, "memory", md, {"machine": machine, "command": cmd, "rows": rows})


if __name__ == "__main__":
    main()
