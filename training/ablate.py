"""The ablation table of ``docs/RESULTS.md``: every row on the validation splits, one JSON per row, resumable.

``stickerpick ablate [--config configs/pbr-ablation.yaml] [--row NAME ...] [--force]`` (or
``python -m training.ablate``). Rows whose JSON exists are skipped; the Markdown table and a PNG bar chart are
regenerated from all row JSONs at the end of every run. Trained rows use the cached-feature, heads-only mode of
the base config (frozen MiniLM and EfficientNet-Lite0).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.config import TrainConfig, load_config

log = logging.getLogger("training.ablate")

COMPONENTS = ("inter_topic", "intra_topic", "emotion_kd", "matching")
NICE = {
    "inter_topic": "inter-topic",
    "intra_topic": "intra-topic",
    "emotion_kd": "emotion KD",
    "matching": "matching/hard negatives",
}
METRICS = ("R@1", "MRR", "macro_F1", "weighted_F1")


@dataclass
class Row:
    name: str
    label: str
    kind: str  # chance | baseline | logreg | train | rerank
    overrides: list[str] = field(default_factory=list)
    sticker_text: bool = False
    note: str = ""


def rows() -> list[Row]:
    only_contrastive = [f"losses.{c}.enabled=false" for c in COMPONENTS]
    out = [
        Row("chance", "chance", "chance"),
        Row(
            "baseline-minilm",
            "text-only baseline (models/baseline-minilm, ONNX)",
            "baseline",
            sticker_text=True,
            note="reads each candidate's emoji name (sticker text on); no images",
        ),
        Row(
            "logreg",
            "text-only logistic regression (frozen MiniLM)",
            "logreg",
            note="predicts the emoji class; maps it to candidates through their emoji",
        ),
        Row("dual-encoder", "dual encoder (i2t + t2i)", "train", only_contrastive),
    ]
    for c in COMPONENTS:
        ov = [o for o in only_contrastive if not o.startswith(f"losses.{c}.")]
        note = "dual-encoder ranking (the head is trained, not used)" if c == "matching" else ""
        out.append(Row(f"plus-{c}", f"+ {NICE[c]}", "train", ov, note=note))
    out.append(Row("full", "full PBR (dual-encoder ranking)", "train", []))
    for c in COMPONENTS:
        out.append(Row(f"minus-{c}", f"full − {NICE[c]}", "train", [f"losses.{c}.enabled=false"]))
    out.append(Row("full-rerank", "full PBR + re-ranking (matching head)", "rerank", note="the `full` model"))
    out.append(
        Row(
            "full-sticker-text",
            "full PBR + sticker text",
            "train",
            ["model.use_sticker_text=true"],
            sticker_text=True,
            note="the only trained row with sticker text",
        )
    )
    return out


def command_for(row: Row, config: Path) -> str:
    if row.kind == "train":
        sets = " ".join(f"--set {o}" for o in row.overrides)
        return f"stickerpick train --config {config} {sets} --out var/runs/ablation/{row.name}".replace(
            "  ", " "
        )
    return f"stickerpick ablate --config {config} --row {row.name}"


# ------------------------------------------------------------------------------------------------ running
def _val_sets(cfg: TrainConfig) -> list[tuple[str, Any]]:
    from training.data.format import StickerDataset

    return [(s.label, StickerDataset.open(s.path)) for s in cfg.data.val]


def _slim(m: dict[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in (*METRICS, "R@2", "R@5", "n", "sticker_text") if k in m}


def _eval_scorer(cfg: TrainConfig, scorer: Any, sticker_text: bool) -> dict[str, Any]:
    from training.evaluate import evaluate

    return {
        name: _slim(evaluate(ds, "val", scorer, sticker_text=sticker_text, max_samples=cfg.val_max_samples))
        for name, ds in _val_sets(cfg)
    }


def _module_from(ckpt_path: Path, cfg: TrainConfig) -> tuple[Any, Any]:
    from training.build import stop_layer
    from training.model import load_checkpoint
    from training.module import PBRTrainModule
    from training.prepare import make_towers

    model = load_checkpoint(ckpt_path).model
    towers = make_towers(model, cfg)
    return PBRTrainModule(model, cfg.losses, stop_layer(model)).eval(), towers


def run_row(row: Row, base: Path, runs: Path, results: Path) -> dict[str, Any]:
    cfg = load_config(base, row.overrides, out_dir=str(runs / row.name))
    started = time.time()
    out: dict[str, Any] = {"row": row.name, "label": row.label, "kind": row.kind, "note": row.note}
    out["sticker_text"] = row.sticker_text
    if row.kind == "chance":
        from training.evaluate import RandomScorer

        out["val"] = _eval_scorer(cfg, RandomScorer(), row.sticker_text)
    elif row.kind == "baseline":
        from engine.ranking import load_ranker
        from training.evaluate import EngineScorer

        scorer = EngineScorer(
            load_ranker("auto", Path("models/baseline-minilm"), max_turns=cfg.data.max_turns)
        )
        out["val"] = _eval_scorer(cfg, scorer, row.sticker_text)
    elif row.kind == "logreg":
        out["val"] = _run_logreg(cfg)
    elif row.kind == "train":
        from training.train import train, validate

        summary = train(cfg)
        module, towers = _module_from(Path(cfg.out_dir) / "best.pt", cfg)
        val = validate(module, towers, cfg)
        out["val"] = {k: _slim(v) for k, v in val.items()}
        out["train_seconds"] = summary["train_seconds"]
        out["seconds_per_epoch"] = summary["seconds_per_epoch"]
        out["best_step"] = summary["best"].get("step")
        out["steps"] = summary["step"]
        out["mode"] = (
            "cached features, heads only" if not cfg.model.get("text_trainable_layers") else "partial"
        )
    elif row.kind == "rerank":
        from training.train import validate

        full = runs / "full" / "best.pt"
        if not full.is_file():
            raise FileNotFoundError(f"{full}: run the `full` row first")
        module, towers = _module_from(full, cfg)
        out["val"] = {k: _slim(v) for k, v in validate(module, towers, cfg, rerank=True).items()}
    out["seconds"] = round(time.time() - started, 1)
    out["command"] = command_for(row, base)
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{row.name}.json").write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    return out


def _run_logreg(cfg: TrainConfig) -> dict[str, Any]:
    import torch.nn.functional as F

    from training.build import build_model
    from training.data.format import Sample, StickerDataset
    from training.evaluate import TextLogRegScorer, evaluate
    from training.prepare import make_towers, sample_text

    towers = make_towers(build_model(cfg), cfg)

    def embed(texts: list[str]) -> np.ndarray:
        pooled = towers.text.features(texts, desc="logreg text features").pooled
        return F.normalize(pooled, dim=-1).numpy()

    class _Scorer(TextLogRegScorer):
        def _features(self, samples: Sequence[Sample]) -> np.ndarray:
            return embed([sample_text(s, cfg.data.max_turns) for s in samples])

    out = {}
    for spec in cfg.data.val:
        ds = StickerDataset.open(spec.path)
        scorer = _Scorer(embed, ds.load("train"))
        out[spec.label] = _slim(
            evaluate(ds, "val", scorer, sticker_text=False, max_samples=cfg.val_max_samples)
        )
    return out


# ------------------------------------------------------------------------------------------------ report
def _fmt_time(r: dict[str, Any]) -> str:
    s = r.get("train_seconds")
    return "–" if s is None else f"{s / 60:.1f} min"


def render(results: Path, markdown: Path, base: Path) -> None:
    order = {r.name: i for i, r in enumerate(rows())}
    data = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    data = [d for d in data if d.get("row") in order]
    data.sort(key=lambda d: order[d["row"]])
    if not data:
        return
    sets = list(data[0]["val"])
    lines = _table(data, sets)
    cmds = "\n".join(f"{d['row']}: {d['command']}" for d in data)
    ds_lines = []
    cfg = load_config(base)
    for spec in cfg.data.val:
        ds_lines.append(f"- **{spec.label}**: `{spec.path}` split `val`")
    train_lines = [
        f"- `{s.path}` (split {s.split}, weight {s.weight}, max {s.max_samples})" for s in cfg.data.train
    ]
    text = f"""{MARK_START}
<!-- generated by `stickerpick ablate` (training/ablate.py) from {results}/*.json; do not edit by hand -->

## Ablation on the validation splits

Validation sets (model selection and this table use the `val` splits only, never `test`):
{chr(10).join(ds_lines)}

Training data of the trained rows: google + twitter emoji art only (the facebook art, unclear licence, is the
unseen evaluation style):
{chr(10).join(train_lines)}

Mode: **cached frozen-tower features, heads only** (`model.text_trainable_layers=0`, `image_trainable_blocks=0`;
MiniLM mean-pooled outputs and EfficientNet-Lite0 features of {cfg.data.views} views per sticker are computed
once in `{cfg.data.cache_dir}` and reused by every row), {cfg.epochs} epochs, batch {cfg.batch_size}, seed
{cfg.seed}; the checkpoint of each row is the best mean val R@1 over the three sets. Metrics in %; R@1 and MRR
over each sample's candidates (TweetEval: 20, MELD: 7); mF1/wF1: macro/weighted F1 of the top-1 emoji class.
"Train time" is optimisation time on 2 CPU threads (cache building and validation excluded).

{chr(10).join(lines)}

¹ The "+ matching/hard negatives" row trains the matching head (with its gradient into the embeddings) but ranks
with the dual encoder; "full PBR + re-ranking" ranks the candidates with the matching head of the `full` model.
Sticker text is off in every row except the text-only baseline (it embeds each candidate's emoji name: that is
all it sees of a sticker) and "full PBR + sticker text". The logistic regression predicts an emoji class from the
dialogue and scores each candidate by the probability of the candidate's emoji (it reads the candidates' emoji,
not their images).

![ablation](results_ablation.png)

Exact commands (run all with `stickerpick ablate --config {base}`):

```
{cmds}
```
{MARK_END}
"""
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(replace_section(markdown.read_text() if markdown.is_file() else "# Results\n", text))
    _bar_chart(data, sets, markdown.parent / "results_ablation.png")


def _table(data: list[dict[str, Any]], sets: list[str]) -> list[str]:
    """The results table in Markdown: one row per ablation row, four metrics per validation set."""
    head = "| row | sticker text | " + " | ".join(
        f"{s} {m}" for s in sets for m in ("R@1", "MRR", "mF1", "wF1")
    )
    head += " | train time |"
    sep = "|" + "---|" * (2 + 4 * len(sets) + 1)
    lines = [head, sep]
    for d in data:
        cells = []
        for s in sets:
            v = d["val"].get(s, {})
            cells += [f"{v[m]:.1f}" if m in v else "–" for m in METRICS]
        label = d["label"] + (" ¹" if d["row"] == "plus-matching" else "")
        lines.append(
            f"| {label} | {'on' if d.get('sticker_text') else 'off'} | "
            + " | ".join(cells)
            + f" | {_fmt_time(d)} |"
        )
    return lines


MARK_START = "<!-- ablation:start -->"
MARK_END = "<!-- ablation:end -->"


def replace_section(document: str, section: str) -> str:
    """Put the generated ablation section between its markers; the rest of the document is kept as it is
    (appended at the end the first time)."""
    section = section.rstrip("\n") + "\n"
    start, end = document.find(MARK_START), document.find(MARK_END)
    if start != -1 and end > start:
        return document[:start] + section + document[end + len(MARK_END) :].lstrip("\n")
    return document.rstrip("\n") + "\n\n" + section


def _bar_chart(data: list[dict[str, Any]], sets: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / max(1, len(sets))
    x = np.arange(len(data))
    for i, s in enumerate(sets):
        ax.bar(x + i * width, [d["val"].get(s, {}).get("R@1", 0.0) for d in data], width, label=s)
    ax.set_xticks(x + width * (len(sets) - 1) / 2)
    ax.set_xticklabels([d["label"] for d in data], rotation=40, ha="right", fontsize=7)
    ax.set_ylabel("val R@1 (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the PBR ablation table on the validation splits.")
    parser.add_argument("--config", type=Path, default=Path("configs/pbr-ablation.yaml"))
    parser.add_argument("--row", action="append", default=[])
    parser.add_argument("--results", type=Path, default=Path("var/results/ablation"))
    parser.add_argument("--runs", type=Path, default=Path("var/runs/ablation"))
    parser.add_argument("--markdown", type=Path, default=Path("docs/RESULTS.md"))
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    known = {r.name: r for r in rows()}
    wanted = [known[n] for n in args.row] if args.row else list(known.values())
    for row in wanted:
        if (args.results / f"{row.name}.json").is_file() and not args.force:
            log.info("row %s: done, skipped", row.name)
            continue
        log.info("row %s …", row.name)
        res = run_row(row, args.config, args.runs, args.results)
        log.info("row %s: %s", row.name, json.dumps({k: v.get("R@1") for k, v in res["val"].items()}))
        render(args.results, args.markdown, args.config)
    render(args.results, args.markdown, args.config)


if __name__ == "__main__":
    main()
