"""Frozen text towers side by side: a logistic regression on each tower's pooled embeddings.

Run (from the repository root; each --tower is an exported text model directory, served through onnxruntime
exactly as the bots run it: tokenizer.json + text.onnx, mean pooling, L2 norm):

    OMP_NUM_THREADS=1 .venv/bin/python bench/frozen_text_towers.py --data-root DATA_ROOT \
        --tower minilm=var/towers/minilm-int8 --tower e5=var/towers/e5-full-int8 \
        --tower e5-pruned-50k=var/towers/e5-pruned-50000-int8 --out docs/bench

Recipe (the ``logreg`` row of docs/RESULTS.md): ``LogisticRegression(C=1, class_weight="balanced")``, macro-F1
over the gold classes of the validation split (validation only, never test).
- TweetEval emoji: fitted on 12,000 train tweets (seeded sample), scored on the 5,000 val tweets (20 classes).
- XED: fitted on 12,000 English train lines (7 classes: the six Ekman emotions + neutral) and, with
  ``--multilingual-fit``, on 12,000 lines drawn from all its training languages; scored on English val
  and on each held-out language (all their lines are val; they have no neutral lines, so "en (6)" is English val
  without its neutral lines: the like-for-like row).
The e5 towers carry e5's ``query:`` prefix in their tokenizer template. Writes ``OUT/frozen_text_towers.{md,json}``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bench import _common  # noqa: E402


def _lines(path: Path) -> list[str]:
    return [ln.rstrip("\r") for ln in path.read_text(encoding="utf-8").split("\n")[:-1]]


def tweeteval(data_root: Path, split: str) -> tuple[list[str], list[str]]:
    from engine.preprocess import clean_text

    base = data_root / "tweeteval" / "datasets" / "emoji"
    return [clean_text(t) for t in _lines(base / f"{split}_text.txt")], _lines(base / f"{split}_labels.txt")


def xed(data_root: Path, language: str, split: str) -> tuple[list[str], list[str]]:
    from training.data.xed import xed_examples

    rows = [(t, e) for s, t, e, _ in xed_examples(data_root, language) if s == split]
    return [t for t, _ in rows], [e for _, e in rows]


def sample(texts: list[str], labels: list[str], n: int | None, seed: int = 0) -> tuple[list[str], list[str]]:
    if n is None or n >= len(texts):
        return texts, labels
    idx = sorted(random.Random(seed).sample(range(len(texts)), n))
    return [texts[i] for i in idx], [labels[i] for i in idx]


def macro_f1(gold: list[str], pred: list[str]) -> float:
    from sklearn.metrics import f1_score

    labels = sorted(set(gold))
    return float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0) * 100.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, required=True)
    ap.add_argument("--tower", action="append", required=True, help="NAME=MODEL_DIR (repeat)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench")
    ap.add_argument("--train-size", type=int, default=12000)
    ap.add_argument(
        "--multilingual-fit", action="store_true", help="also fit XED on a sample of all its train languages"
    )
    ap.add_argument("--max-per-language", type=int, default=2000, help="held-out val lines per language")
    args = ap.parse_args()

    from sklearn.linear_model import LogisticRegression

    from engine.ranking._onnx import OnnxTextEncoder, read_manifest
    from training.data.xed import HELD_OUT_LANGUAGES, xed_languages

    te_train = sample(*tweeteval(args.data_root, "train"), args.train_size)
    te_val = tweeteval(args.data_root, "val")
    present = set(xed_languages(args.data_root))
    held = [lang for lang in HELD_OUT_LANGUAGES if lang in present]
    train_langs = [lang for lang in sorted(present) if lang not in HELD_OUT_LANGUAGES]
    fits = {"en": sample(*xed(args.data_root, "en", "train"), args.train_size)}
    if args.multilingual_fit:
        pooled = [xed(args.data_root, lang, "train") for lang in train_langs]
        texts = [t for p in pooled for t in p[0]]
        fits["train languages"] = sample(texts, [e for p in pooled for e in p[1]], args.train_size)
    en_val = xed(args.data_root, "en", "val")
    en6 = (
        [t for t, e in zip(*en_val, strict=True) if e != "neutral"],
        [e for e in en_val[1] if e != "neutral"],
    )
    xed_sets = {"en": en_val, "en (6)": en6}
    xed_sets.update({lang: sample(*xed(args.data_root, lang, "val"), args.max_per_language) for lang in held})

    results: dict[str, dict[str, float]] = {}
    info: dict[str, dict[str, object]] = {}
    for spec in args.tower:
        name, _, path = spec.partition("=")
        model_dir = Path(path)
        manifest = read_manifest(model_dir)  # ModelMissing names the directory and what it lacks
        enc = OnnxTextEncoder(
            model_dir / manifest["files"]["text"],
            model_dir / manifest["files"]["tokenizer"],
            int(manifest.get("max_tokens", 128)),
            manifest.get("output", "last_hidden_state"),
            threads=1,
        )
        start = time.time()
        n_texts = 0

        def embed(texts: list[str], enc: OnnxTextEncoder = enc) -> np.ndarray:
            nonlocal n_texts
            n_texts += len(texts)
            return enc.encode(texts, batch_size=64)

        def fit(x: np.ndarray, y: list[str]) -> LogisticRegression:
            return LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced").fit(x, y)

        clf = fit(embed(te_train[0]), te_train[1])
        tweeteval_f1 = macro_f1(te_val[1], list(clf.predict(embed(te_val[0]))))
        val_x = {label: embed(texts) for label, (texts, _) in xed_sets.items()}
        for fit_name, (texts, gold_train) in fits.items():
            clf = fit(embed(texts), gold_train)
            row = {"TweetEval": tweeteval_f1}
            for label, (_, gold) in xed_sets.items():
                row[f"XED {label}"] = macro_f1(gold, list(clf.predict(val_x[label])))
            held_scores = [row[f"XED {lang}"] for lang in held]
            row["XED held-out mean"] = float(np.mean(held_scores)) if held_scores else float("nan")
            results[f"{name} | {fit_name}"] = row
        size = sum(p.stat().st_size for p in model_dir.iterdir() if p.is_file())
        info[name] = {
            "model_dir": str(model_dir),
            "dir_mb": round(size / 1e6, 1),
            "quantized": manifest.get("quantized"),
            "seconds": round(time.time() - start, 1),
            "texts": n_texts,
        }
        print(name, {k: {c: round(v, 1) for c, v in r.items()} for k, r in results.items()}, info[name])

    cols = ["TweetEval", *[f"XED {k}" for k in xed_sets], "XED held-out mean"]
    counts = {"TweetEval": len(te_val[0]), **{f"XED {k}": len(v[0]) for k, v in xed_sets.items()}}
    md = [
        "# Frozen text towers + logistic regression (validation macro-F1, %)",
        "",
        f"Command: `{_common.command(__file__)}`  ",
        f"Machine: {_common.machine()}. Fitted on {len(te_train[0])} TweetEval train tweets; XED fitted on "
        f"{args.train_size} train lines of " + " / ".join(f"*{k}*" for k in fits) + f" (train languages: "
        f"{', '.join(train_langs)}); held-out languages {', '.join(held)} are never fitted on.",
        "",
        "| tower | XED fitted on | dir MB | "
        + " | ".join(f"{c} (n={counts[c]})" if c in counts else c for c in cols)
        + " |",
        "|---|---|---:|" + "---:|" * len(cols),
    ]
    for key, row in results.items():
        name, fit_name = key.split(" | ")
        cells = " | ".join(f"{row[c]:.1f}" for c in cols)
        md.append(f"| {name} | {fit_name} | {info[name]['dir_mb']} | {cells} |")
    md.append("")
    payload = {"command": _common.command(__file__), "results": results, "towers": info, "n": counts}
    _common.write(args.out, "frozen_text_towers", "\n".join(md) + "\n", payload)


if __name__ == "__main__":
    main()
