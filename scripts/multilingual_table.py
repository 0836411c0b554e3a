#!/usr/bin/env python3
"""The rows that choose a multilingual tower, one column per model, from ``scripts/eval_suite.py`` JSONs.

    .venv/bin/python scripts/multilingual_table.py RESULT.json [RESULT.json ...] --out docs/results/NAME

Reads what ``eval_suite.py --multilingual-too --text-off-only`` wrote for the kinds seen, xed trained, xed held
out, xed pack, names held out and names trained (a row a JSON lacks stays empty). Writes ``OUT.md`` (the table,
with this command) and ``OUT.png`` (XED's held-out languages per model: among the 7 emotion stickers and over
the whole default pack).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELD_OUT = ("de", "es", "el", "he")
ALL_TOWER = ", multilingual tower for all"
ROWS: list[tuple[str, str, str, str]] = [  # label, eval_suite set, model suffix, metric
    ("TweetEval macro-F1, multilingual tower for all", "TweetEval, seen art (20)", ALL_TOWER, "macro_F1"),
    ("MELD accompany weighted-F1, tower for all", "MELD accompany, seen art (7)", ALL_TOWER, "weighted_F1"),
    (
        "MELD respond weighted-F1, tower for all",
        "MELD respond (the /sticker reading), seen art (7)",
        ALL_TOWER,
        "weighted_F1",
    ),
    *(
        (
            f"emoji names {lang} R@1 of 300, {how}",
            f"emoji names in {lang} (held out), pack of ~300",
            suffix,
            "R@1",
        )
        for how, suffix in (("tower for all", ALL_TOWER), ("as served", ""))
        for lang in ("de", "es")
    ),
    ("TweetEval macro-F1, as served", "TweetEval, seen art (20)", "", "macro_F1"),
    ("MELD accompany weighted-F1, as served", "MELD accompany, seen art (7)", "", "weighted_F1"),
    (
        "MELD respond weighted-F1, as served",
        "MELD respond (the /sticker reading), seen art (7)",
        "",
        "weighted_F1",
    ),
    *(
        (f"XED {lang} macro-F1, 7 stickers", f"XED {lang}, seen art (7)", "", "macro_F1")
        for lang in ("en", "fi", "fr", *HELD_OUT)
    ),
    *(
        (f"XED {lang} macro-F1, default pack", f"XED {lang}, default pack (~300)", "", "macro_F1")
        for lang in ("en", *HELD_OUT)
    ),
    *(
        (
            f"XED {lang} emotion macro-F1, default pack",
            f"XED {lang}, default pack (~300)",
            "",
            "emotion_macro_F1",
        )
        for lang in ("en", *HELD_OUT)
    ),
]
MEANS = [
    ("XED held-out mean, 7 stickers", [f"XED {lang} macro-F1, 7 stickers" for lang in HELD_OUT]),
    ("XED held-out mean, default pack", [f"XED {lang} macro-F1, default pack" for lang in HELD_OUT]),
    (
        "XED held-out mean emotion, default pack",
        [f"XED {lang} emotion macro-F1, default pack" for lang in HELD_OUT],
    ),
]


def table(rows: list[dict]) -> tuple[list[str], dict[str, list[float | None]]]:
    """(models, label → one value per model)."""
    models = [m for m in dict.fromkeys(r["model"] for r in rows) if not m.endswith(ALL_TOWER)]
    found = {(r["set"], r["model"]): r for r in rows if not r.get("sticker_text")}
    out: dict[str, list[float | None]] = {}
    for label, name, suffix, metric in ROWS:
        out[label] = [
            float(found[(name, m + suffix)][metric]) if (name, m + suffix) in found else None for m in models
        ]
    for label, parts in MEANS:
        values: list[float | None] = []
        for i in range(len(models)):
            xs = [out[p][i] for p in parts]
            values.append(
                None if any(x is None for x in xs) else sum(x for x in xs if x is not None) / len(xs)
            )
        out[label] = values
    return models, out


def plot(models: list[str], values: dict[str, list[float | None]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(13, 4), sharey=True)
    x = np.arange(len(HELD_OUT))
    width = 0.8 / max(len(models), 1)
    for ax, reading in zip(axes, ("7 stickers", "default pack"), strict=True):
        for i, model in enumerate(models):
            ys = [values[f"XED {lang} macro-F1, {reading}"][i] or 0.0 for lang in HELD_OUT]
            ax.bar(x + i * width, ys, width, label=model)
        english = values[f"XED en macro-F1, {reading}"][0]
        if english is not None:
            ax.axhline(english, color="black", linestyle="--", linewidth=1, label="XED en (English tower)")
            ax.axhline(english - 5, color="grey", linestyle=":", linewidth=1, label="5 below English")
        ax.set_xticks(x + width * (len(models) - 1) / 2, HELD_OUT)
        ax.set_title(f"XED held-out languages, {reading}")
        ax.set_ylabel("macro-F1 (validation)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, nargs="+", help="eval_suite.py JSON files")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows: list[dict] = []
    for path in args.results:
        rows += json.loads(path.read_text(encoding="utf-8"))["rows"]
    models, values = table(rows)
    command = "python scripts/multilingual_table.py " + " ".join(sys.argv[1:])
    lines = [
        f"Command: `{command}`.",
        "",
        "| | " + " | ".join(models) + " |",
        "|---|" + "---:|" * len(models),
    ]
    for label, vals in values.items():
        lines.append(f"| {label} | " + " | ".join("" if v is None else f"{v:.1f}" for v in vals) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot(models, values, args.out.with_suffix(".png"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
