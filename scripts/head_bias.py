"""Does the matching head favour the frequent stickers by a constant? Take each sticker's mean head logit over
reference dialogues (the set's own training split: the most favourable reference there is) off its logit, by
``tau``, and rank as `/sticker` does (the head over the dual encoder's top 30, above the rest).

    python scripts/head_bias.py [--model models/default] [--data var/datasets/meld-accompany ...]
        [--taus 0 0.25 0.5 0.75 1] [--reference 300] [--max-samples 3000] [--out docs/results/head-bias]

The first row of each set is the dual encoder alone, the second (tau 0) the head as served. Image-only
stickers, named by the model's bank. Writes ``OUT.md`` and ``OUT.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np

SHORTLIST = 30


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=Path("models/default"))
    p.add_argument(
        "--data",
        type=Path,
        nargs="+",
        default=[Path("var/datasets") / d for d in ("meld-accompany", "meld-reply", "tweeteval-emoji-gt")],
    )
    p.add_argument("--taus", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    p.add_argument("--reference", type=int, default=300, help="training dialogues the bias is the mean over")
    p.add_argument("--max-samples", type=int, default=3000)
    p.add_argument("--out", type=Path, default=Path("docs/results/head-bias"))
    args = p.parse_args(argv)

    from engine.ranking import load_ranker
    from training.data.format import StickerDataset, alt_mapping
    from training.evaluate import TIE_SEED, EngineScorer, context_texts, rank
    from training.metrics import ranking_metrics

    ranker: Any = load_ranker("auto", args.model)  # a PBR model with a matching head
    results: dict[str, list[dict]] = {}
    for root in args.data:
        ds = StickerDataset.open(root)
        samples = ds.load("val")[: args.max_samples]
        cands = [ds.candidates(s) for s in samples]
        alt = alt_mapping(ds.index, samples)
        uniq = sorted({c for cs in cands for c in cs})
        vecs = EngineScorer(ranker).sticker_vectors(uniq, ds, False, alt)
        matrix = np.stack([vecs[u] for u in uniq])
        reference = ranker.embed_dialogues(
            [ranker.dialogue_text(context_texts(s)) for s in ds.load("train")[: args.reference]]
        )
        mean_logit = np.mean([ranker.rerank_scores(q, matrix) for q in reference], axis=0)
        bias = dict(zip(uniq, mean_logit, strict=True))
        queries = ranker.embed_dialogues([ranker.dialogue_text(context_texts(s)) for s in samples])
        scored = []
        for q, cs in zip(queries, cands, strict=True):
            stickers = np.stack([vecs[c] for c in cs])
            cos = stickers @ q
            short = np.argsort(-cos, kind="stable")[:SHORTLIST]
            logits = np.asarray(ranker.rerank_scores(q, stickers[short]), dtype=np.float64)
            scored.append((cos, short, logits, np.array([bias[cs[i]] for i in short])))
        positives = [s.current.sticker_id for s in samples]
        rows = []
        for tau in [None, *args.taus]:
            rng = np.random.default_rng(TIE_SEED)
            rankings = []
            for (cos, short, logits, b), cs in zip(scored, cands, strict=True):
                final = np.asarray(cos, dtype=np.float64)
                if tau is not None:  # the shortlist by its adjusted logits, above every other candidate
                    adjusted = logits - tau * b
                    final = final - final.max() - 1.0
                    final[short] = adjusted - adjusted.min()
                rankings.append(rank(final, cs, rng))
            m = ranking_metrics(rankings, positives, alt)
            rows.append(
                {"tau": tau, **{k: m[k] for k in ("R@1", "macro_F1", "weighted_F1", "top1_distinct")}}
            )
            print(f"{root.name} tau={tau}: R@1 {m['R@1']:.2f} macro-F1 {m['macro_F1']:.2f}", flush=True)
        results[root.name] = rows

    command = "python scripts/head_bias.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {"command": command.strip(), "model": ranker.version, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"`{report['command']}` ({report['model']}; first {args.max_samples} validation samples a set)",
        "",
        "| set | ranking | R@1 | macro-F1 | weighted-F1 |",
        "|---|---|---:|---:|---:|",
    ]
    for name, rows in results.items():
        for row in rows:
            how = "dual encoder" if row["tau"] is None else f"head, bias × {row['tau']}"
            lines.append(
                f"| {name} | {how} | {row['R@1']:.2f} | {row['macro_F1']:.2f} | {row['weighted_F1']:.2f} |"
            )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
