"""What the English dialogue tower's token budget buys: quality on the validation sets with long contexts against
the tower's time at batch 1, one budget beside the other in the same run.

    python scripts/token_budget.py [--model models/default] [--budgets 32 40 48 56 64 80 96]
        [--data var/datasets/meld-accompany var/datasets/meld-reply] [--timed 200]
        [--out docs/results/token-budget]

The served model truncates a dialogue from the left to its manifest's ``max_tokens`` (the newest words kept).
Each budget here serves the same model with another limit: every ``--data`` set's validation split is measured
as ``stickerpick eval`` measures it (dual encoder, image-only stickers), and the tower is timed on the first
``--timed`` validation dialogues of the first set, the budgets taking turns dialogue by dialogue so that a busy
moment of the machine falls on all of them alike. Writes ``OUT.md``, ``OUT.json`` and ``OUT.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=Path("models/default"))
    p.add_argument("--budgets", type=int, nargs="+", default=[32, 40, 48, 56, 64, 80, 96])
    p.add_argument(
        "--data",
        type=Path,
        nargs="+",
        default=[Path("var/datasets/meld-accompany"), Path("var/datasets/meld-reply")],
    )
    p.add_argument("--timed", type=int, default=200, help="dialogues timed per budget")
    p.add_argument("--out", type=Path, default=Path("docs/results/token-budget"))
    args = p.parse_args(argv)

    from engine.ranking import load_ranker
    from training.data.format import StickerDataset
    from training.evaluate import EngineScorer, context_texts, evaluate

    for d in args.data:
        if not (d / "release_val.json").is_file():
            print(f"error: {d} has no validation split (scripts/prepare_data.sh builds it)", file=sys.stderr)
            return 2
    ranker: Any = load_ranker("auto", args.model)  # a PBR model: its towers and bank are read here
    tokenizer = ranker.text.tokenizer
    trained = int(tokenizer.max_tokens)
    sets = [StickerDataset.open(d) for d in args.data]
    rows: list[dict] = []
    for budget in args.budgets:
        tokenizer.max_tokens = budget
        row: dict = {"budget": budget, "trained": budget == trained, "sets": {}}
        for ds in sets:
            m = evaluate(ds, "val", EngineScorer(ranker))
            row["sets"][ds.root.name] = {k: m[k] for k in ("R@1", "MRR", "macro_F1", "weighted_F1", "n")}
            print(
                f"budget {budget}: {ds.root.name} R@1 {m['R@1']:.2f} wF1 {m['weighted_F1']:.2f}", flush=True
            )
        rows.append(row)

    texts = [ranker.dialogue_text(context_texts(s)) for s in sets[0].load("val")[: args.timed]]
    counts = [ranker.count_tokens(t) for t in texts]
    times: dict[int, list[float]] = {b: [] for b in args.budgets}
    for t in texts[:20]:  # warm-up
        ranker.embed_dialogues([t])
    for t in texts:
        for budget in args.budgets:
            tokenizer.max_tokens = budget
            start = time.perf_counter()
            ranker.embed_dialogues([t])
            times[budget].append(time.perf_counter() - start)
    tokenizer.max_tokens = trained
    for row in rows:
        b = row["budget"]
        row["tower_p50_ms"] = float(np.median(times[b]) * 1000)
        row["tokens_mean"] = float(np.mean([min(c, b) for c in counts]))

    command = "python scripts/token_budget.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {
        "command": command.strip(),
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "model": ranker.version,
        "trained_budget": trained,
        "timed_on": f"{len(texts)} validation dialogues of {sets[0].root.name}",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    names = [ds.root.name for ds in sets]
    lines = [
        f"`{report['command']}` ({report['model']}; trained at {trained} tokens; tower timed on "
        f"{report['timed_on']}, the budgets taking turns)",
        "",
        "| budget | mean tokens | tower p50 ms | " + " | ".join(f"{n} R@1 / wF1" for n in names) + " |",
        "|---:|---:|---:|" + "---:|" * len(names),
    ]
    for row in rows:
        cells = [f"{row['sets'][n]['R@1']:.2f} / {row['sets'][n]['weighted_F1']:.2f}" for n in names]
        mark = " (trained)" if row["trained"] else ""
        lines.append(
            f"| {row['budget']}{mark} | {row['tokens_mean']:.1f} | {row['tower_p50_ms']:.2f} | "
            + " | ".join(cells)
            + " |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    _plot(rows, names, args.out.with_suffix(".png"))
    print("\n".join(lines))
    return 0


def _plot(rows: list[dict], names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    ms = [r["tower_p50_ms"] for r in rows]
    for n in names:
        ax.plot(ms, [r["sets"][n]["weighted_F1"] for r in rows], "o-", label=n)
        for r, x in zip(rows, ms, strict=True):
            ax.annotate(
                str(r["budget"]),
                (x, r["sets"][n]["weighted_F1"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    ax.set_xlabel("English tower p50 at batch 1, ms")
    ax.set_ylabel("weighted-F1 (validation)")
    ax.set_title("Token budget: quality against the tower's time")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
