#!/usr/bin/env python3
"""Measure served models on every validation set, image only and with sticker text, side by side.

    .venv/bin/python scripts/eval_suite.py --model old=var/old-models/default --model new=models/default \
        [--checkpoint new=var/runs/pbr-default/best.pt] [--out docs/results/suite] [--max-samples N]

Each ``--model`` is an exported model directory, scored through onnxruntime exactly as the bots serve it (a
sticker without text is named by its nearest known picture where the model has that bank; ``--unnamed-too``
adds the image-alone row beside it, ``--multilingual-too`` a row with every dialogue read by a
routed model's second tower); each ``--checkpoint`` adds a "+ re-ranking" row (the matching head over all candidates, PyTorch). The sets are the
validation splits written by ``scripts/prepare_data.sh``; a missing one is skipped with a note. Writes
``OUT.json`` (every metric) and ``OUT.md`` (the table, with this command), and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# (label, dataset folder, what it measures)
SETS = [
    ("TweetEval, seen art (20)", "var/datasets/tweeteval-emoji-gt", "seen"),
    ("MELD accompany, seen art (7)", "var/datasets/meld-accompany", "seen"),
    ("MELD respond (the /sticker reading), seen art (7)", "var/datasets/meld-reply", "seen"),
    ("TweetEval, unseen facebook (20)", "var/datasets/tweeteval-emoji-unseen-facebook", "unseen"),
    ("MELD accompany, unseen facebook (7)", "var/datasets/meld-accompany-unseen-facebook", "unseen"),
    ("TweetEval, pack of ~330 facebook", "var/datasets/tweeteval-pack-facebook", "big pack"),
    ("MELD accompany, pack of ~330 facebook", "var/datasets/meld-pack-facebook", "big pack"),
    ("MELD reply, pack of ~330 facebook", "var/datasets/meld-reply-pack-facebook", "big pack"),
    ("emoji names, pack of ~330 facebook", "var/datasets/emoji-names-pack-facebook", "big pack"),
    ("TweetEval, default pack art (google, ~330)", "var/datasets/tweeteval-pack-google", "big pack"),
    ("MELD accompany, default pack art (google, ~330)", "var/datasets/meld-pack-google", "big pack"),
]
# XED subtitle lines among the 7 emotion stickers (seen art): English, two training languages, and the held-out
# languages that no training run reads (training/data/xed.py: HELD_OUT_LANGUAGES).
XED = [("en", "trained"), ("fi", "trained"), ("fr", "trained")] + [
    (lang, "held out") for lang in ("de", "es", "el", "he")
]
SETS += [(f"XED {lang}, seen art (7)", f"var/datasets/xed-{lang}", f"xed {kind}") for lang, kind in XED]
# The same lines ranked over the whole default pack (~300 google emoji), as a chat with that pack sees them:
# read by the emotion macro-F1 (the top sticker's emotion class, training/metrics.py), since a sad line that gets
# 😭 first is answered right though its gold is 😢.
SETS += [
    (f"XED {lang}, default pack (~300)", f"var/datasets/xed-{lang}-pack", "xed pack")
    for lang in ("en", "de", "es", "el", "he")
]
# The default pack's ~300 emoji named in an emojibase-data locale (what a message is about, not its emotion).
SETS += [
    (f"emoji names in {lang} ({kind}), pack of ~300", f"var/datasets/emoji-names-{lang}", f"names {kind}")
    for lang, kind in (("de", "held out"), ("es", "held out"), ("fr", "trained"))
]
METRICS = ("R@1", "R@5", "R@10", "MRR", "macro_F1", "weighted_F1", "emotion_macro_F1")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", default=[], help="NAME=model directory (repeat)")
    ap.add_argument(
        "--checkpoint", action="append", default=[], help="NAME=checkpoint .pt for re-ranking rows"
    )
    ap.add_argument("--out", default="var/results/suite")
    ap.add_argument("--max-samples", type=int, default=2000, help="per set (the first N val samples)")
    ap.add_argument(
        "--kind",
        action="append",
        default=[],
        help="only sets of this kind (seen, unseen, big pack, xed trained, xed held out, xed pack, names trained, "
        "names held out); repeat",
    )
    ap.add_argument("--text-off-only", action="store_true", help="image-only reading only (no sticker text)")
    ap.add_argument(
        "--served-rerank",
        type=int,
        default=0,
        metavar="N",
        help="also a row per model re-ranked as /sticker does: the matching head over the top N (served: 30)",
    )
    ap.add_argument(
        "--unnamed-too",
        action="store_true",
        help="for a model with a bank of known pictures, also a row without it (image only: the image alone)",
    )
    ap.add_argument(
        "--multilingual-too",
        action="store_true",
        help="for a model with a second dialogue tower, also a row with every dialogue read by that tower "
        "(what it gives a chat in another language, measured on the English sets too)",
    )
    args = ap.parse_args()

    from engine.ranking import load_ranker
    from training.data.format import StickerDataset
    from training.evaluate import EngineScorer, evaluate

    scorers = []
    for item in args.model:
        name, _, path = item.partition("=")
        ranker = load_ranker("auto", Path(path), max_turns=8)
        with_text = getattr(ranker, "use_sticker_text", False) and not args.text_off_only
        readings = (False, True) if with_text else (False,)
        scorers.append((name, EngineScorer(ranker), readings))
        if args.served_rerank and getattr(ranker, "rerank_scores", None) is not None:
            scorers.append(
                (f"{name} + matching head", EngineScorer(ranker, rerank_top=args.served_rerank), readings)
            )
        if args.unnamed_too and getattr(ranker, "names_pictures", False):
            unnamed = load_ranker("auto", Path(path), max_turns=8, name_pictures=False)
            scorers.append((f"{name}, pictures unnamed", EngineScorer(unnamed), (False,)))
        if args.multilingual_too and getattr(ranker, "has_multilingual", False):
            every = load_ranker("auto", Path(path), max_turns=8)
            every.dialogue_tower = lambda text: "multilingual"  # the routing's choice, made for every text
            scorers.append((f"{name}, multilingual tower for all", EngineScorer(every), readings))
    if args.checkpoint:
        from training.pbr_scorer import CheckpointScorer

        for item in args.checkpoint:
            name, _, path = item.partition("=")
            scorers.append(
                (f"{name} + re-ranking", CheckpointScorer.load(Path(path), rerank=True), (False, True))
            )
    rows: list[dict] = []
    for label, folder, kind in SETS:
        if args.kind and kind not in args.kind:
            continue
        if not Path(folder, "conversion.json").is_file():
            print(f"skip {label}: {folder} is missing (bash scripts/prepare_data.sh)", file=sys.stderr)
            continue
        ds = StickerDataset.open(folder)
        for name, scorer, readings in scorers:
            for text in readings:
                started = time.time()
                m = evaluate(ds, "val", scorer, sticker_text=text, max_samples=args.max_samples)
                rows.append(
                    {
                        **m,
                        "set": label,
                        "kind": kind,
                        "model": name,
                        "scorer": m["model"],
                        "sticker_text": text,
                    }
                )
                print(
                    f"{label:48s} {name:22s} text={'on ' if text else 'off'} "
                    + " ".join(f"{k} {m[k]:.1f}" for k in METRICS)
                    + f" top1 {m['top1_distinct']}/{m['gold_classes']} ({time.time() - started:.0f}s)",
                    flush=True,
                )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python scripts/eval_suite.py " + " ".join(sys.argv[1:])
    out.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=1) + "\n")
    lines = [
        f"Command: `{command}` (validation splits, first {args.max_samples} samples per set).",
        "",
        "| set | model | sticker text | R@1 | R@5 | R@10 | MRR | macro-F1 | weighted-F1 | emotion macro-F1 "
        "| distinct top-1 / gold classes |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['model']} | {'on' if r['sticker_text'] else 'off'} | "
            + " | ".join(f"{r.get(k, float('nan')):.1f}" for k in METRICS)
            + f" | {r['top1_distinct']} / {r['gold_classes']} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
