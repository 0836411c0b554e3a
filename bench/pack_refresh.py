"""Benchmark: a pack that grows. With the shipped model's pack vote a sticker's vector depends on its whole
pack, so a pack that gains stickers is embedded again, whole. Timed here: the first import of a pack of N
stickers, then a refresh that adds a few, as served (the image vectors stored under the image tower's key: the
tower reads only the new pictures, the whole pack is fused again) and naively (the whole pack through the
image tower again: what the engine would do without the stored image vectors).

Run:  .venv/bin/python bench/pack_refresh.py [--model-dir models/default] [--sizes 300 2000] [--added 1]
Results → docs/bench/pack_refresh.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import engine  # noqa: E402, F401  (first: it configures numpy's BLAS threads as the bots run them)
from bench import _common  # noqa: E402
from bench.suggest_path import _make_pack  # noqa: E402


async def _one(model_dir: Path, n: int, added: int, work: Path, naive: bool) -> dict[str, float]:
    from engine.db import StickerEmbedding
    from engine.ranking import per_pack
    from engine.service import open_service
    from migrations import run_upgrade

    home = work / ("naive" if naive else "served")
    settings = _common.settings(home, model_dir)
    await asyncio.to_thread(run_upgrade, settings.db_url)
    full = work / f"pack-{n + added}"
    if not full.exists():
        _make_pack(full, n + added, seed=n)
    first = work / f"pack-{n}"
    if not first.exists():  # the same pack without its last ``added`` stickers
        first.mkdir()
        meta = json.loads((full / "pack.json").read_text())
        meta["stickers"] = meta["stickers"][:n]
        for sticker in meta["stickers"]:
            shutil.copy(full / sticker["file"], first / sticker["file"])
        (first / "pack.json").write_text(json.dumps(meta))
    service = await open_service(settings)
    try:
        packed = per_pack(service.ranker)
        if packed is None:
            raise SystemExit(f"{model_dir} does not name stickers per pack: nothing to measure")
        started = time.perf_counter()
        await service.import_pack(first, name="grows")
        imported = time.perf_counter() - started
        if naive:  # forget the stored image vectors: the refresh reads every picture again
            from sqlalchemy import delete

            async with service.sessions.begin() as session:
                stored = StickerEmbedding.model_version == packed.image_key
                await session.execute(delete(StickerEmbedding).where(stored))
        started = time.perf_counter()
        report = await service.import_pack(full, name="grows")
        refreshed = time.perf_counter() - started
        assert report.added == added, report
    finally:
        await service.close()
    return {"import_s": imported, "refresh_s": refreshed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--sizes", type=int, nargs="+", default=[300, 2000])
    ap.add_argument("--added", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench")
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            served = asyncio.run(_one(args.model_dir, n, args.added, Path(tmp), naive=False))
            naive = asyncio.run(_one(args.model_dir, n, args.added, Path(tmp), naive=True))
        rows.append({"stickers": n, "added": args.added, "served": served, "naive": naive})
        print(f"{n}: {served} naive {naive}", file=sys.stderr, flush=True)
    lines = [
        f"Command: `{_common.command(__file__)}`  ",
        f"Machine: {_common.machine()}",
        "",
        "| pack | added | first import s | refresh s (served: stored image vectors) | refresh s (naive: every "
        "picture again) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['stickers']:,} | {r['added']} | {r['served']['import_s']:.1f} | "
            f"{r['served']['refresh_s']:.2f} | {r['naive']['refresh_s']:.2f} |"
        )
    _common.write(
        args.out,
        "pack_refresh",
        "\n".join(lines) + "\n",
        {"command": _common.command(__file__), "rows": rows},
    )


if __name__ == "__main__":
    main()
