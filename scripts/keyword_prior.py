"""Would a keyword prior help the ranking? A sticker whose emoji's name (or keyword) appears in the last turn
gets a boost, weighted by how rare that word is among the candidates' names (IDF), added to the served model's
scores; measured on the validation sets at several weights, weight 0 (the model as it is) in the same run.

    python scripts/keyword_prior.py [--model models/default] [--emojibase vendor/node_modules/emojibase-data]
        [--data var/datasets/tweeteval-emoji-gt ...] [--max-samples 3000] [--out docs/results/keyword-prior]

The candidates are named as the served model names image-only stickers (its bank of known pictures, per set),
never by their gold emoji. Three vocabularies are tried: the CLDR short name of every emoji; the name of every
emoji that is not a face, a person or a heart (objects, food, places, activities, symbols, flags: what a message
is *about*); and that with emojibase's keywords (tags) too. A word counts once it is 3 or more characters, in
its plural too. The boost of a candidate is the IDF of its rarest matching word over log(candidates). The
emoji-names sets are not read here: their texts are the names themselves. Writes ``OUT.md`` and ``OUT.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np

WORD = re.compile(r"\w+", re.UNICODE)
# emojibase's groups: 0 smileys & emotion (faces, hearts), 1 people & body; the rest are things and symbols
TOPIC_GROUPS = {3, 4, 5, 6, 7, 8, 9}
VOCABULARIES = {
    "names": (None, False),
    "topic names": (TOPIC_GROUPS, False),
    "topic names + keywords": (TOPIC_GROUPS, True),
}
DEFAULT_DATA = [
    "tweeteval-emoji-gt",
    "tweeteval-emoji-unseen-facebook",
    "meld-accompany",
    "meld-reply",
    "goemotions-emoji",
    "xed-en-pack",
]


def vocabulary(emojibase: Path, groups: set[int] | None, tags: bool) -> dict[str, set[str]]:
    """emoji (with and without its variation selector) → its lower-cased words."""
    out: dict[str, set[str]] = {}
    for x in json.loads((emojibase / "en" / "data.json").read_text(encoding="utf-8")):
        if groups is not None and x.get("group") not in groups:
            continue
        text = x["label"] + (" " + " ".join(x.get("tags", [])) if tags else "")
        words = {w.lower() for w in WORD.findall(text) if len(w) >= 3}
        for form in {x["emoji"], x["emoji"].replace("\ufe0f", "")}:
            out.setdefault(form, set()).update(words)
    return out


def words_of(text: str) -> set[str]:
    ws = {w.lower() for w in WORD.findall(text)}
    return ws | {w[:-1] for w in ws if len(w) > 3 and w.endswith("s")}


def boost(names: list[str | None], text: str, vocab: dict[str, set[str]]) -> np.ndarray:
    """Each candidate's IDF-weighted match with ``text``, over log(candidates): 0 for none, at most 1."""
    kws = [vocab.get(n or "", vocab.get((n or "").replace("\ufe0f", ""), set())) for n in names]
    df: dict[str, int] = {}
    for k in kws:
        for w in k:
            df[w] = df.get(w, 0) + 1
    said = words_of(text)
    n = len(names)
    out = np.zeros(n)
    for i, k in enumerate(kws):
        hit = k & said
        if hit and n > 1:
            out[i] = max(math.log(n / df[w]) for w in hit) / math.log(n)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=Path("models/default"))
    p.add_argument("--emojibase", type=Path, default=Path("vendor/node_modules/emojibase-data"))
    p.add_argument("--data", type=Path, nargs="+", default=[Path("var/datasets") / d for d in DEFAULT_DATA])
    p.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.4])
    p.add_argument("--max-samples", type=int, default=3000)
    p.add_argument("--out", type=Path, default=Path("docs/results/keyword-prior"))
    args = p.parse_args(argv)
    if not (args.emojibase / "en" / "data.json").is_file():
        print(
            f"error: no emojibase-data at {args.emojibase} (bash dev.sh setup installs it)", file=sys.stderr
        )
        return 2

    from engine.ranking import load_ranker
    from training.data.format import StickerDataset, alt_mapping, load_sticker_image
    from training.evaluate import TIE_SEED, EngineScorer, rank
    from training.metrics import ranking_metrics

    ranker: Any = load_ranker("auto", args.model)  # a PBR model: its towers and bank are read here
    vocabs = {name: vocabulary(args.emojibase, g, t) for name, (g, t) in VOCABULARIES.items()}
    results: dict[str, dict] = {}
    for root in args.data:
        ds = StickerDataset.open(root)
        samples = ds.load("val")[: args.max_samples]
        cands = [ds.candidates(s) for s in samples]
        scores = EngineScorer(ranker).score(samples, cands, ds, False)
        by_set: dict[str, list[str]] = {}
        for c in sorted({c for cs in cands for c in cs}):
            by_set.setdefault(ds.index.set_of(c), []).append(c)
        named: dict[str, str | None] = {}
        for ids in by_set.values():
            vectors = ranker.image_vectors([load_sticker_image(ds.index.find(i)) for i in ids])
            named.update(zip(ids, ranker.nearest_known(vectors), strict=True))
        alt = alt_mapping(ds.index, samples)
        positives = [s.current.sticker_id for s in samples]
        last = [s.context[-1].text if s.context else "" for s in samples]
        per: dict[str, dict] = {}
        for vname, vocab in vocabs.items():
            boosts = [boost([named[c] for c in cs], t, vocab) for cs, t in zip(cands, last, strict=True)]
            hit = float(np.mean([b.max() > 0 for b in boosts]))
            rows = {}
            for w in args.weights:
                rng = np.random.default_rng(TIE_SEED)
                rankings = [
                    rank(np.asarray(sc, dtype=np.float64) + w * b, cs, rng)
                    for sc, b, cs in zip(scores, boosts, cands, strict=True)
                ]
                m = ranking_metrics(rankings, positives, alt)
                rows[str(w)] = {k: m[k] for k in ("R@1", "macro_F1", "weighted_F1")}
            per[vname] = {"samples_with_a_match": hit, "weights": rows}
            best = max(rows.items(), key=lambda kv: kv[1]["macro_F1"])
            print(
                f"{root.name} / {vname}: matched {hit:.1%}; mF1 at 0 {rows['0.0']['macro_F1']:.2f}, "
                f"best {best[1]['macro_F1']:.2f} at {best[0]}",
                flush=True,
            )
        results[root.name] = {"n": len(samples), "vocabularies": per}

    command = "python scripts/keyword_prior.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {"command": command.strip(), "model": ranker.version, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    ws = [str(w) for w in args.weights]
    lines = [
        f"`{report['command']}` ({report['model']}; first {args.max_samples} validation samples a set; "
        "macro-F1 / R@1 at each weight, 0 = the model as it is)",
        "",
        "| set | vocabulary | matched | " + " | ".join(f"w {w}" for w in ws) + " |",
        "|---|---|---:|" + "---:|" * len(ws),
    ]
    for name, r in results.items():
        for vname, v in r["vocabularies"].items():
            cells = [f"{v['weights'][w]['macro_F1']:.2f} / {v['weights'][w]['R@1']:.2f}" for w in ws]
            lines.append(
                f"| {name} | {vname} | {v['samples_with_a_match']:.1%} | " + " | ".join(cells) + " |"
            )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
