"""How well can anything read MELD's "respond" set (the sticker answers the turns before it, as /sticker does)?

    python scripts/meld_respond_bounds.py --meld DIR [--data var/datasets/meld-reply] [--model models/default]
        [--out docs/results/meld-respond-bounds]

``--meld`` is the folder with MELD's ``train_sent_emo.csv`` and ``dev_sent_emo.csv``. The respond samples are
rebuilt from it as ``stickerpick data convert meld --variant reply`` builds them (every utterance after the
first of its dialogue; its emotion is the sticker, the up to 8 utterances before it the context) and measured on
the validation (dev) split, weighted-F1 and macro-F1 of the 7 emotions:

- *readers of the gold labels*: rules and a classifier that see the annotated emotion of every context
  utterance and who said it (what a perfect emotion reader of the context would know), and who sends the
  sticker. They bound what reading the context can give.
- *text classifiers*: TF-IDF + logistic regression fitted on the training split, on the context and, for
  reference, on the utterance itself (the accompany reading).
- *the served model* (``--model``; dual encoder, and with the matching head over the top 30 as the bots rank)
  on ``--data`` as converted, and on the same samples with the context cut to the sticker sender's own turns
  where the sender wrote any.

Writes ``OUT.md`` and ``OUT.json`` with the command.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

EMOTIONS = ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]
CONTEXT = 8

# (speaker, text, emotion) of the context, oldest first; (speaker, text, emotion) of the sticker's utterance
Sample = tuple[list[tuple[str, str, str]], tuple[str, str, str]]


def respond_samples(path: Path) -> list[Sample]:
    dialogues: dict[str, list[tuple[int, str, str, str]]] = defaultdict(list)
    with path.open(encoding="utf-8") as f:
        for r in csv.DictReader(f):
            dialogues[r["Dialogue_ID"]].append(
                (int(r["Utterance_ID"]), r["Speaker"], r["Utterance"], r["Emotion"])
            )
    out: list[Sample] = []
    for turns in dialogues.values():
        turns.sort()
        rows = [(s, t, e) for _, s, t, e in turns]
        out.extend((rows[max(0, i - CONTEXT) : i], rows[i]) for i in range(1, len(rows)))
    return out


def own_last(context: list[tuple[str, str, str]], sender: str) -> str | None:
    """The emotion of the sender's own latest turn in the context (None: the sender wrote none)."""
    return next((e for s, _, e in reversed(context) if s == sender), None)


def gold_features(context: list[tuple[str, str, str]], sender: str) -> np.ndarray:
    k = len(EMOTIONS)
    f = np.zeros(3 * k + 2)
    f[EMOTIONS.index(context[-1][2])] = 1
    own = own_last(context, sender)
    if own is None:
        f[-1] = 1
    else:
        f[k + EMOTIONS.index(own)] = 1
    for _, _, e in context:
        f[2 * k + EMOTIONS.index(e)] += 1 / len(context)
    f[-2] = float(context[-1][0] == sender)
    return f


def scores(gold: list[str], predicted: list[str]) -> dict[str, float]:
    return {
        "weighted_F1": round(100 * f1_score(gold, predicted, average="weighted"), 1),
        "macro_F1": round(100 * f1_score(gold, predicted, average="macro"), 1),
    }


def label_rows(train: list[Sample], val: list[Sample]) -> list[tuple[str, str, dict[str, float]]]:
    gold = [t[2] for _, t in val]
    y_train = [t[2] for _, t in train]
    rows = [
        ("chance level", "always neutral (the most frequent emotion)", scores(gold, ["neutral"] * len(val)))
    ]
    rows.append(
        ("gold labels", "the previous utterance's emotion, copied", scores(gold, [c[-1][2] for c, _ in val]))
    )
    rows.append(
        (
            "gold labels",
            "the sender's own latest emotion, copied (else neutral)",
            scores(gold, [own_last(c, t[0]) or "neutral" for c, t in val]),
        )
    )
    x_train = np.array([gold_features(c, t[0]) for c, t in train])
    x_val = np.array([gold_features(c, t[0]) for c, t in val])
    for weights, label in ((None, "plain"), ("balanced", "class-balanced")):
        clf = LogisticRegression(max_iter=3000, class_weight=weights).fit(x_train, y_train)
        rows.append(
            (
                "gold labels",
                f"logistic regression on every context emotion, who said it, and the sender ({label})",
                scores(gold, list(clf.predict(x_val))),
            )
        )
    texts = {
        "the context (joined)": lambda c, t: " ".join(u[1] for u in c),
        "the previous utterance": lambda c, t: c[-1][1],
        "the utterance itself (the accompany reading, for reference)": lambda c, t: t[1],
    }
    for name, text in texts.items():
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        x_tr = vec.fit_transform([text(c, t) for c, t in train])
        x_va = vec.transform([text(c, t) for c, t in val])
        best = max(
            (
                scores(
                    gold,
                    list(
                        LogisticRegression(max_iter=2000, C=2.0, class_weight=w)
                        .fit(x_tr, y_train)
                        .predict(x_va)
                    ),
                )
                for w in (None, "balanced")
            ),
            key=lambda s: s["weighted_F1"],
        )
        rows.append(
            ("text classifier", f"TF-IDF + logistic regression on {name} (better of plain / balanced)", best)
        )
    return rows


def model_rows(data: Path, model: Path) -> list[tuple[str, str, dict[str, float]]]:
    from engine.ranking import load_ranker
    from training.data.format import StickerDataset
    from training.evaluate import EngineScorer, evaluate

    val_file = data / "release_val.json"
    samples = [json.loads(line) for line in val_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows: list[tuple[str, str, dict[str, float]]] = []
    ranker = load_ranker("auto", model, max_turns=CONTEXT)
    with tempfile.TemporaryDirectory() as tmp:
        own_dir = Path(tmp) / data.name
        own_dir.mkdir()
        for name in ("conversion.json", "npy_stickers"):
            (own_dir / name).symlink_to((data / name).resolve())
        with (own_dir / "release_val.json").open("w", encoding="utf-8") as f:
            for s in samples:
                own = [t for t in s["context"] if t["from_id"] == s["current"]["from_id"]]
                f.write(json.dumps({**s, "context": own or s["context"]}, ensure_ascii=False) + "\n")
        readings = (
            ("the context as served", data),
            ("the sender's own turns only, where there are any", own_dir),
        )
        for rerank, how in ((0, "dual encoder"), (30, "matching head over the top 30, as the bots rank")):
            for what, folder in readings:
                m = evaluate(StickerDataset.open(folder), "val", EngineScorer(ranker, rerank_top=rerank))
                rows.append(
                    (
                        f"served model ({how})",
                        what,
                        {"weighted_F1": round(m["weighted_F1"], 1), "macro_F1": round(m["macro_F1"], 1)},
                    )
                )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--meld", type=Path, required=True, help="folder with train_sent_emo.csv and dev_sent_emo.csv"
    )
    ap.add_argument("--data", type=Path, default=Path("var/datasets/meld-reply"))
    ap.add_argument("--model", type=Path, default=Path("models/default"))
    ap.add_argument("--out", type=Path, default=Path("docs/results/meld-respond-bounds"))
    args = ap.parse_args()
    for name in ("train_sent_emo.csv", "dev_sent_emo.csv"):
        if not (args.meld / name).is_file():
            print(
                f"error: {args.meld / name} is missing: --meld names MELD's folder of CSV files",
                file=sys.stderr,
            )
            return 2
    if not (args.data / "release_val.json").is_file():
        print(
            f"error: {args.data} is not a converted dataset: run scripts/prepare_data.sh first",
            file=sys.stderr,
        )
        return 2
    train = respond_samples(args.meld / "train_sent_emo.csv")
    val = respond_samples(args.meld / "dev_sent_emo.csv")
    rows = label_rows(train, val) + model_rows(args.data, args.model)
    command = "python scripts/meld_respond_bounds.py " + " ".join(
        f"--{k} {v}"
        for k, v in (("meld", "MELD_DIR"), ("data", args.data), ("model", args.model), ("out", args.out))
    )
    lines = [
        "# MELD respond: what reading the context can give (validation)",
        "",
        f"Command: `{command}`. Machine: {platform.machine()}, Python {platform.python_version()}. "
        f"{len(val)} validation samples ({len(train)} training), 7 emotions; "
        f"the sender wrote some context turn in {sum(own_last(c, t[0]) is not None for c, t in val)} of them.",
        "",
        "| reader | what it reads | weighted-F1 | macro-F1 |",
        "|---|---|---:|---:|",
    ]
    lines += [f"| {kind} | {what} | {s['weighted_F1']} | {s['macro_F1']} |" for kind, what, s in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {
                "command": command,
                "machine": platform.machine(),
                "rows": [{"reader": k, "reads": w, **s} for k, w, s in rows],
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
