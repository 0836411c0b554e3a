"""Benchmark: the dialogue towers of two model directories, A against B, interleaved call by call in one process.

Run:  .venv/bin/python bench/tower_ab.py --a models/default --b OTHER_MODEL_DIR [--rounds 300] [--out docs/bench]
Each round embeds the bench's 20-turn English history and its German one (``bench/text_tower.py``; routed as
``/sticker`` routes them: the English tower and the multilingual one) with A, then with B, in alternating order,
at batch 1 on the engine's sessions. Reports p50/p90 per model and history, B/A, and the cosine of B's dialogue
vector to A's (the same vector space: how far the graph change moved the answer). Results go to
``<out>/tower_ab.{md,json}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import engine  # noqa: E402, F401  (first: it configures numpy's BLAS threads as the bots run them)
from bench import _common  # noqa: E402
from bench.text_tower import TURNS, TURNS_DE  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=Path, default=REPO / "models" / "default", help="the model as it is")
    ap.add_argument("--b", type=Path, required=True, help="the model with the change")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench")
    args = ap.parse_args()
    from engine.ranking import load_ranker

    rankers: dict[str, Any] = {"A": load_ranker("auto", args.a), "B": load_ranker("auto", args.b)}
    histories = {"English": TURNS, "German": TURNS_DE}
    texts = {name: rankers["A"].dialogue_text(turns) for name, turns in histories.items()}
    towers = {name: rankers["A"].dialogue_tower(t) for name, t in texts.items()}
    times: dict[tuple[str, str], list[float]] = {(m, h): [] for m in rankers for h in histories}
    for r in rankers.values():  # warm-up, both towers loaded
        for t in texts.values():
            for _ in range(10):
                r.embed_dialogues([t])
    for i in range(args.rounds):
        for m in ("A", "B") if i % 2 == 0 else ("B", "A"):
            for h, t in texts.items():
                start = time.perf_counter()
                rankers[m].embed_dialogues([t])
                times[(m, h)].append(time.perf_counter() - start)
    rows = []
    for h, t in texts.items():
        a, b = (rankers[m].embed_dialogues([t])[0] for m in ("A", "B"))
        pa, pb = (float(np.median(times[(m, h)]) * 1000) for m in ("A", "B"))
        rows.append(
            {
                "history": h,
                "tower": towers[h],
                "A_p50_ms": pa,
                "A_p90_ms": float(np.percentile(times[("A", h)], 90) * 1000),
                "B_p50_ms": pb,
                "B_p90_ms": float(np.percentile(times[("B", h)], 90) * 1000),
                "B_over_A": pb / pa,
                "cosine": float(a @ b),
            }
        )
    versions = {m: r.version for m, r in rankers.items()}
    md = "\n".join(
        [
            f"### Dialogue towers, A against B ({versions['A']} / {versions['B']})",
            "",
            f"Machine: {_common.machine()}. Command: `{_common.command(__file__)}`. Batch 1, the bench's 20-turn "
            f"histories, {args.rounds} interleaved rounds.",
            "",
            "| history | tower | A p50 ms | A p90 ms | B p50 ms | B p90 ms | B / A | cosine B to A |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
            *(
                f"| {r['history']} | {r['tower']} | {r['A_p50_ms']:.2f} | {r['A_p90_ms']:.2f} | "
                f"{r['B_p50_ms']:.2f} | {r['B_p90_ms']:.2f} | {r['B_over_A']:.3f} | {r['cosine']:.5f} |"
                for r in rows
            ),
            "",
        ]
    )
    payload = {"command": _common.command(__file__), "machine": _common.machine(), "models": versions}
    _common.write(args.out, "tower_ab", md, {**payload, "rows": rows})


if __name__ == "__main__":
    main()
