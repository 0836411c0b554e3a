"""Which dialogue tower each validation text goes to (engine/language.py), per corpus and per XED language.

    OMP_NUM_THREADS=1 .venv/bin/python bench/language_routing.py --data-root DATA_ROOT \
        [--datasets var/datasets] [--out docs/bench]

A text should reach the English tower when it is English (TweetEval, MELD, XED en) and the multilingual tower
otherwise (every other XED language). Each rule is a column: the shipped one (P(English) ≥ threshold, for several
thresholds, and with the short-text rule) beside the naive one (the detector's top language is English). Validation splits only; the MELD and
TweetEval dialogues are read from the converted datasets (``stickerpick data convert``), as the ranker sees them
(the last 8 turns joined). Also the detector's time per dialogue. Writes ``OUT/language_routing.{md,json}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import _common  # noqa: E402

THRESHOLDS = (0.5, 0.2, 0.1, 0.05, 0.02)


def _dialogues(path: Path, n: int) -> list[str]:
    from engine.preprocess import dialogue_to_text
    from training.data.reader import load_split

    return [dialogue_to_text([t.text for t in s.context], 8) for s in load_split(path, "val")[:n]]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, required=True)
    ap.add_argument("--datasets", type=Path, default=REPO / "var" / "datasets")
    ap.add_argument("--per-set", type=int, default=800)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench")
    args = ap.parse_args(argv)

    from engine.language import DEFAULT_MIN_ENGLISH, MIN_LETTERS, detect, english_probability, is_english
    from training.data.xed import HELD_OUT_LANGUAGES, xed_examples, xed_languages

    sets: dict[str, tuple[bool, list[str]]] = {}
    for name, ds in (
        ("TweetEval", "tweeteval-emoji-gt"),
        ("MELD", "meld-accompany"),
        ("emoji keywords", "emoji-names-pack-facebook"),
    ):
        if (args.datasets / ds).is_dir():
            sets[name] = (True, _dialogues(args.datasets / ds, args.per_set))
    for lang in xed_languages(args.data_root):
        texts = [t for split, t, _, _ in xed_examples(args.data_root, lang) if split == "val"][
            : args.per_set // 2
        ]
        if len(texts) >= 50:
            tag = " (held out)" if lang in HELD_OUT_LANGUAGES else ""
            sets[f"XED {lang}{tag}"] = (lang == "en", texts)

    rows, results, seconds, n_total = [], {}, 0.0, 0
    for name, (english, texts) in sets.items():
        start = time.perf_counter()
        p_en = [english_probability(t) for t in texts]
        top = [detect(t)[0] for t in texts]
        seconds += time.perf_counter() - start
        n_total += len(texts) * 2

        def right(is_en: list[bool], english: bool = english) -> float:
            return 100 * sum(1 for e in is_en if e == english) / len(is_en)

        by_rule = {f"p_en>={t}": right([p >= t for p in p_en]) for t in THRESHOLDS}
        by_rule["top==en"] = right([t == "en" for t in top])
        by_rule["shipped"] = right([is_english(t) for t in texts])
        results[name] = {"english": english, "n": len(texts), **by_rule}
        rows.append(
            f"| {name} | {'English' if english else 'multilingual'} | {len(texts)} | {by_rule['shipped']:.1f} | "
            + " | ".join(f"{by_rule[f'p_en>={t}']:.1f}" for t in THRESHOLDS)
            + f" | {by_rule['top==en']:.1f} |"
        )
    ms = 1000 * seconds / max(n_total, 1)
    md = [
        "# Language routing: the share of validation texts that reach the right dialogue tower (%)",
        "",
        f"Command: `{_common.command(__file__)}`  ",
        f"Machine: {_common.machine()}. Shipped rule: P(English) ≥ {DEFAULT_MIN_ENGLISH}, or fewer than "
        f"{MIN_LETTERS} letters all ASCII → English tower; the other columns are P(English) alone. "
        f"Detector time: {ms:.2f} ms per dialogue (mean).",
        "",
        "| set | right tower | n | shipped | "
        + " | ".join(f"P(en) ≥ {t}" for t in THRESHOLDS)
        + " | naive: top is en |",
        "|---|---|---:|" + "---:|" * (len(THRESHOLDS) + 2),
        *rows,
    ]
    payload = {"command": _common.command(__file__), "ms_per_dialogue": ms, "results": results}
    _common.write(args.out, "language_routing", "\n".join(md) + "\n", payload)


if __name__ == "__main__":
    main()
