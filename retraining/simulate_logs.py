"""Simulated chat logs for the retraining loop: what retraining and the usage prior gain, measured.

Real opted-in chats do not exist yet, so this builds them from the TRAINING dialogues of an accompany dataset
(``var/datasets/dailydialog-accompany`` by default: DailyDialog is not in the default model's training data,
``meld-accompany`` is) and writes them with the real exporter (``training.chatlogs.export_logs``: salted ids,
explicit candidates, ``release_<split>.meta.json``, split by time), so retraining reads exactly what
``stickerpick data export`` writes. The database capture step (``StickerService.record_sticker``) is skipped:
for thousands of samples it is slow and it adds nothing the export does not already decide; the end-to-end test
(``tests/training/test_retrain_e2e.py``) covers that path.

What is simulated:
- dialogues (a sample whose context has one turn starts a dialogue) are dealt to ``chats`` chats by a hash of
  their first turn;
- each chat has its own sticker preferences: a Dirichlet skew over the dataset's stickers (the 7 emotion
  stickers) used to accept or drop samples by their gold sticker, and a *habit*: with probability ``habit``
  the chat sends its favourite sticker instead of the gold one — something the per-chat usage prior can learn
  and a global model cannot;
- timestamps increase dialogue by dialogue (shuffled order), so the held-back slice is the latest part.

Then (``run``): the serving model vs a short fine-tune from the serving model's checkpoint on the simulated
train slice + the base data (``retraining.retrain.retrain_config``, bounded by ``max_steps``) vs that fine-tune +
the usage prior, whose weight is picked on a validation part of the train slice (its newest part, by time),
never on the held-back slice. Metrics: R@1, MRR, macro-F1 on the held-back slice.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from engine.samples import SENT, LoggedSample
from training.chatlogs import export_logs
from training.data.format import Sample, StickerDataset

log = logging.getLogger(__name__)

START = datetime(2026, 1, 1, tzinfo=UTC)
WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
METRICS = ("R@1", "MRR", "macro_F1", "n")


# ------------------------------------------------------------------------------------------------ simulation
def dialogues(samples: Sequence[Sample]) -> list[list[Sample]]:
    """Consecutive samples of one dialogue: a sample with a one-turn context starts a new one."""
    out: list[list[Sample]] = []
    for s in samples:
        if not out or len(s.context) <= 1:
            out.append([])
        out[-1].append(s)
    return out


def chat_of(dialogue: Sequence[Sample], chats: int) -> int:
    first = dialogue[0].context[0].text if dialogue[0].context else ""
    return int(hashlib.sha256(first.encode("utf-8")).hexdigest()[:8], 16) % chats


@dataclass
class ChatPreferences:
    """The simulated chats' tastes over the dataset's stickers (``stickers``, database-like ids ``sid``)."""

    stickers: list[str]
    sid: dict[str, int]
    skew: dict[int, np.ndarray]  # per chat: a Dirichlet draw over ``stickers``
    favourite: dict[int, str]  # per chat: the sticker its habit sends
    keep: np.ndarray  # per sticker: the balance factor of accepting it as gold

    def accept(self, chat: int) -> np.ndarray:
        """Per sticker: the probability that ``chat`` logs a sample whose gold sticker it is."""
        return self.keep * self.skew[chat] / self.skew[chat].max()


def chat_preferences(
    ds: StickerDataset, dlgs: Sequence[Sequence[Sample]], chats: int, alpha: float, balance: float, seed: int
) -> ChatPreferences:
    nrng = np.random.default_rng(seed)
    stickers = sorted({c for d in dlgs[:200] for s in d for c in ds.candidates(s)})
    sid = {s: i + 1 for i, s in enumerate(stickers)}  # database-like sticker ids, pack 1
    skew = {c: nrng.dirichlet([alpha] * len(stickers)) for c in range(chats)}
    favourite = {c: stickers[int(np.argmax(skew[c]))] for c in range(chats)}
    # balance: accept a gold sticker with (rarest frequency / its frequency) ** balance (1: uniform classes)
    freq = {s: 0 for s in stickers}
    for d in dlgs:
        for s in d:
            if s.current.sticker_id in freq:
                freq[s.current.sticker_id] += 1
    rarest = min(n for n in freq.values() if n) if any(freq.values()) else 1
    keep = np.array([(rarest / max(freq[s], 1)) ** balance for s in stickers])
    return ChatPreferences(stickers, sid, skew, favourite, keep)


def log_dialogues(
    ds: StickerDataset,
    dlgs: Sequence[Sequence[Sample]],
    prefs: ChatPreferences,
    chats: int,
    samples: int,
    habit: float,
    rng: random.Random,
) -> list[LoggedSample]:
    """Up to ``samples`` logged samples, dialogue by dialogue: a minute apart, half an hour between dialogues."""
    logged: list[LoggedSample] = []
    at = START
    for d in dlgs:
        if len(logged) >= samples:
            break
        chat = chat_of(d, chats)
        p = prefs.accept(chat)
        kept = False
        for s in d:
            gold = s.current.sticker_id
            if gold not in prefs.sid or rng.random() > p[prefs.stickers.index(gold)]:
                continue
            if rng.random() < habit:
                gold = prefs.favourite[chat]
            logged.append(logged_sample(ds, s, gold, chat, prefs.sid, len(logged) + 1, at))
            at += timedelta(minutes=1)
            kept = True
            if len(logged) >= samples:
                break
        if kept:
            at += timedelta(minutes=30)
    return logged


def logged_sample(
    ds: StickerDataset, s: Sample, gold: str, chat: int, sid: dict[str, int], n: int, at: datetime
) -> LoggedSample:
    """Sample ``s`` as chat ``chat`` logs it, sending ``gold``: what the database capture step would store."""
    users = {int(t.from_id) if t.from_id is not None else 0 for t in s.context}
    user = int(s.current.from_id) if s.current.from_id is not None else 0
    return LoggedSample(
        id=n,
        chat_key=f"sim:{chat}",
        user_key=f"sim:{chat}:{user}",
        kind=SENT,
        sticker_id=sid[gold],
        pack_id=1,
        emoji=ds.index.alt(gold),
        media_sha256=gold,
        context=[
            {"id": int(t.id) if str(t.id).isdigit() else i, "from": int(t.from_id or 0), "text": t.text}
            for i, t in enumerate(s.context)
        ],
        user_keys={u: f"sim:{chat}:{u}" for u in users},
        chat_sticker_ids=list(sid.values()),
        created_at=at,
    )


def simulate(
    source: Path,
    out_dir: Path,
    *,
    chats: int = 12,
    samples: int = 2000,
    habit: float = 0.3,
    alpha: float = 0.5,
    balance: float = 0.0,
    val_fraction: float = 0.2,
    seed: int = 0,
    salt: bytes = b"simulation",
) -> dict[str, Any]:
    """Write ``out_dir/logs`` (train = older part, val = held-back latest part) and ``out_dir/logs-tune`` (the
    train slice alone, its newest ``val_fraction`` as val: where the prior weight is chosen)."""
    ds = StickerDataset.open(source)
    rng = random.Random(seed)
    dlgs = dialogues(ds.load("train"))
    rng.shuffle(dlgs)
    prefs = chat_preferences(ds, dlgs, chats, alpha, balance, seed)
    logged = log_dialogues(ds, dlgs, prefs, chats, samples, habit, rng)
    rows = {prefs.sid[s]: (1, ds.index.alt(s), s) for s in prefs.stickers}
    media = {s: ds.index.find(s) for s in prefs.stickers}

    def export(part: Sequence[LoggedSample], name: str) -> dict[str, Any]:
        return export_logs(
            part,
            rows,
            media.__getitem__,
            out_dir / name,
            salt=salt,
            val_fraction=val_fraction,
            overwrite=True,
        )

    info = export(logged, "logs")
    cut = info["split"]["first_val"]
    info["tune"] = export([s for s in logged if s.created_at < cut], "logs-tune")["samples"]
    info["favourite"] = {f"chat{c}": ds.index.alt(prefs.favourite[c]) for c in range(chats)}
    info["params"] = {
        "source": str(source),
        "chats": chats,
        "samples": samples,
        "habit": habit,
        "alpha": alpha,
        "balance": balance,
        "seed": seed,
    }
    (out_dir / "simulation.json").write_text(
        json.dumps(info, indent=2, default=str, ensure_ascii=False) + "\n"
    )
    return info


def simulate_from(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`simulate` with the command line's settings."""
    return simulate(
        Path(args.source),
        Path(args.out),
        chats=args.chats,
        samples=args.samples,
        habit=args.habit,
        alpha=args.alpha,
        balance=args.balance,
        seed=args.seed,
    )


# ------------------------------------------------------------------------------------------------ evaluation
class CachedScorer:
    """Scores once per sample key, so a grid of prior weights costs one model pass."""

    def __init__(self, base: Any, text_on: bool = False) -> None:
        self.base, self.name, self.text_on = base, base.name, text_on
        self.cache: dict[tuple[str, str], Any] = {}

    def score(self, samples, candidates, dataset, sticker_text):  # type: ignore[no-untyped-def]
        todo = [i for i, s in enumerate(samples) if (str(dataset.root), s.key()) not in self.cache]
        if todo:
            got = self.base.score(
                [samples[i] for i in todo], [candidates[i] for i in todo], dataset, sticker_text
            )
            for i, sc in zip(todo, got, strict=True):
                self.cache[(str(dataset.root), samples[i].key())] = sc
        return [self.cache[(str(dataset.root), s.key())] for s in samples]


def measure(
    model_dir: Path, logs: Path, weight: float, scorer: CachedScorer | None = None
) -> tuple[dict[str, Any], CachedScorer]:
    """R@1, MRR, macro-F1 on ``logs``' val split, the usage prior added at ``weight``; ``scorer`` reuses the
    model's scores of an earlier call."""
    from engine.ranking import load_ranker
    from retraining.retrain import PriorScorer
    from training.evaluate import EngineScorer, evaluate

    if scorer is None:
        ranker = load_ranker("auto", model_dir)
        scorer = CachedScorer(EngineScorer(ranker), bool(getattr(ranker, "use_sticker_text", False)))
    s: Any = PriorScorer(scorer, logs, weight) if weight > 0 else scorer
    m = evaluate(StickerDataset.open(logs), "val", s, sticker_text=scorer.text_on)
    return {k: round(float(m[k]), 2) if k != "n" else int(m[k]) for k in METRICS}, scorer


def run(args: argparse.Namespace) -> dict[str, Any]:
    from retraining.retrain import base_config, retrain_config
    from retraining.settings import RetrainSettings
    from training.finetune import finetune
    from training.model import load_checkpoint

    out = Path(args.out)
    t0 = time.time()
    info = simulate_from(args)
    log.info("simulated %s in %.0fs", info["samples"], time.time() - t0)
    logs, tune = out / "logs", out / "logs-tune"
    results: dict[str, Any] = {"simulation": info}
    serving, serving_scorer = measure(Path(args.serving), logs, 0.0)
    results["serving"] = serving
    prior_serving_w = pick_weight(Path(args.serving), tune)
    results["serving + prior"] = {
        **measure(Path(args.serving), logs, prior_serving_w[0], serving_scorer)[0],
        "weight": prior_serving_w[0],
    }
    results["weight_grid_serving"] = prior_serving_w[1]
    candidate = Path(args.serving)
    if args.max_steps > 0:
        settings = RetrainSettings(_env_file=None)
        ckpt = Path(args.checkpoint)
        base = base_config(settings, load_checkpoint(ckpt).extra)
        cfg, _ = retrain_config(
            settings,
            base,
            logs,
            out / "run",
            [f"max_steps={args.max_steps}", f"threads={args.threads}", *args.override],
        )
        t1 = time.time()
        summary = finetune(cfg, ckpt)
        results["train"] = {"steps": summary["step"], "seconds": round(time.time() - t1, 1)}
        from export.pbr import export_pbr

        candidate = out / "candidate"
        quantize = bool(
            (json.loads((Path(args.serving) / "manifest.json").read_text()).get("quantized") or {}).get(
                "text"
            )
        )
        export_pbr(Path(cfg.out_dir) / "last.pt", candidate, quantize=quantize)
        m, cand_scorer = measure(candidate, logs, 0.0)
        results["retrained"] = m
        w, grid = pick_weight(candidate, tune)
        results["retrained + prior"] = {**measure(candidate, logs, w, cand_scorer)[0], "weight": w}
        results["weight_grid_retrained"] = grid
    results["seconds"] = round(time.time() - t0, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str, ensure_ascii=False) + "\n")
    return results


def pick_weight(model_dir: Path, tune: Path) -> tuple[float, dict[str, float]]:
    """The prior weight with the best R@1 (then MRR) on the train slice's own newest part."""
    scorer: CachedScorer | None = None
    grid: dict[str, float] = {}
    best = (-1.0, -1.0, 0.0)
    for w in WEIGHTS:
        m, scorer = measure(model_dir, tune, w, scorer)
        grid[f"{w:g}"] = m["R@1"]
        if (m["R@1"], m["MRR"]) > best[:2]:
            best = (m["R@1"], m["MRR"], w)
    return best[2], grid


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m retraining.simulate_logs", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--source",
        default="var/datasets/dailydialog-accompany",
        help="accompany dataset whose TRAIN dialogues become chats",
    )
    p.add_argument("--out", default="var/sim-logs", help="output folder (logs/, logs-tune/, results.json)")
    p.add_argument("--chats", type=int, default=12)
    p.add_argument("--samples", type=int, default=2000, help="logged samples in all")
    p.add_argument("--habit", type=float, default=0.3, help="probability a chat sends its favourite sticker")
    p.add_argument(
        "--alpha",
        type=float,
        default=0.5,
        help="Dirichlet concentration of each chat's sticker skew (larger: milder preferences)",
    )
    p.add_argument(
        "--balance",
        type=float,
        default=0.0,
        help="flatten the source's class imbalance: 0 keep it, 1 uniform emotions (before the chats' skews)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--serving", default="models/default", help="serving model directory")
    p.add_argument("--checkpoint", default="var/runs/pbr-default/best.pt", help="its checkpoint")
    p.add_argument("--max-steps", type=int, default=100, help="fine-tuning steps (0: no retrain)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--override", action="append", default=[], help="training config override key=value")
    p.add_argument("--simulate-only", action="store_true", help="write the logs and stop")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.simulate_only:
        print(json.dumps(simulate_from(args), indent=2, default=str, ensure_ascii=False))
        return
    print(json.dumps(run(args), indent=2, default=str, ensure_ascii=False))


if __name__ == "__main__":
    main()
