"""Train a PBR model on cached frozen-tower features (see :mod:`training.pipeline`).

``python -m training.train --config configs/pbr-default.yaml [--set k=v ...] [--resume] [--out DIR]`` or
``stickerpick train ...``; under ``torchrun --nproc_per_node N`` it trains with DDP (gloo on CPU, NCCL on CUDA)
without changes. The run directory gets ``config.json``, ``last.pt`` (everything ``--resume`` needs),
``best.pt`` (best mean validation R@1 over the validation sets; never the test split), ``metrics.json`` and PNG
plots (loss terms, validation metrics).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from training.config import TrainConfig, load_config
from training.features import module_digest
from training.model import save_checkpoint

log = logging.getLogger("training.train")

LOSS_TERMS = ("contrastive", "inter_topic", "intra_topic", "emotion_kd", "matching", "total")


# ------------------------------------------------------------------------------------------------ distributed
class Dist:
    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        cuda = torch.cuda.is_available()
        if self.enabled and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if cuda else "gloo")
        if cuda:
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


# ------------------------------------------------------------------------------------------------ helpers
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np.asarray(np_state[1]).astype(np.int64)), *np_state[2:]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), int(n[2]), int(n[3]), float(n[4])))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def lr_lambda(total: int, warmup: int, min_ratio: float):  # type: ignore[no-untyped-def]
    def f(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def param_groups(module: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    text, image, decay, no_decay = [], [], [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        if ".text_tower." in f".{name}":
            text.append(p)
        elif ".image_tower." in f".{name}":
            image.append(p)
        elif p.ndim < 2 or "norm" in name.lower() or name.endswith("logit_scale"):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "lr": cfg.optim.lr, "weight_decay": cfg.optim.weight_decay},
        {"params": no_decay, "lr": cfg.optim.lr, "weight_decay": 0.0},
    ]
    if text:
        groups.append({"params": text, "lr": cfg.optim.text_lr, "weight_decay": cfg.optim.weight_decay})
    if image:
        groups.append({"params": image, "lr": cfg.optim.image_lr, "weight_decay": cfg.optim.weight_decay})
    return [g for g in groups if g["params"]]


def val_split(spec_split: str) -> str:
    if spec_split == "test":
        raise ValueError("model selection never uses the test split: validation datasets use 'val'")
    return "val"


# ------------------------------------------------------------------------------------------------ plots
def write_plots(run_dir: Path, history: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = history.get("steps", [])
    terms = [t for t in LOSS_TERMS if any(t in r for r in steps)]
    if terms:
        cols = min(3, len(terms))
        rows = math.ceil(len(terms) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
        for ax, term in zip(axes.flat, terms, strict=False):
            pts = [(r["step"], r[term]) for r in steps if term in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts])
            ax.set_title(term)
            ax.set_xlabel("step")
        for ax in list(axes.flat)[len(terms) :]:
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(run_dir / "loss_curves.png", dpi=90)
        plt.close(fig)
    evals = history.get("evals", [])
    if evals:
        names = sorted({k for e in evals for k in e.get("val", {})})
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for metric, ax in zip(("R@1", "MRR"), axes, strict=True):
            for n in names:
                pts = [(e["step"], e["val"][n][metric]) for e in evals if n in e.get("val", {})]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=n)
            if metric == "R@1":
                ax.plot([e["step"] for e in evals], [e["mean_R@1"] for e in evals], "k--", label="mean")
            ax.set_title(f"validation {metric}")
            ax.set_xlabel("step")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(run_dir / "val_metrics.png", dpi=90)
        plt.close(fig)


# ------------------------------------------------------------------------------------------------ validation
def validate(module: Any, towers: Any, cfg: TrainConfig, rerank: bool = False) -> dict[str, dict[str, Any]]:
    from training.data.format import StickerDataset
    from training.evaluate import evaluate
    from training.pbr_scorer import CachedScorer

    scorer = CachedScorer(module, towers, cfg.data.max_turns, rerank=rerank)
    out: dict[str, dict[str, Any]] = {}
    was_training = module.training
    module.eval()
    try:
        for spec in cfg.data.val:
            ds = StickerDataset.open(spec.path)
            n = spec.max_samples if spec.max_samples is not None else cfg.val_max_samples
            text = _sticker_text_on(cfg) if spec.sticker_text is None else spec.sticker_text
            out[spec.label] = evaluate(ds, val_split(spec.split), scorer, sticker_text=text, max_samples=n)
    finally:
        module.train(was_training)
    return out


def _sticker_text_on(cfg: TrainConfig) -> bool:
    return bool(cfg.model.get("use_sticker_text", False))


# ------------------------------------------------------------------------------------------------ training
def train(cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Train; returns the summary written to ``metrics.json`` (on every rank; only rank 0 writes files)."""
    from tqdm import tqdm

    from training.pipeline import (
        PBRTrainModule,
        batch_to,
        build_model,
        epoch_order,
        make_batch,
        make_towers,
        prepare_train_data,
        rank_batches,
        stop_layer,
    )

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    dd = Dist()
    run_dir = Path(cfg.out_dir)
    if dd.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    seed_everything(cfg.seed)

    t0 = time.time()
    model = build_model(cfg)
    towers = make_towers(model, cfg)
    # Rank 0 builds the caches; the others then read them.
    if dd.main:
        data = prepare_train_data(cfg, towers)
    dd.barrier()
    if not dd.main:
        data = prepare_train_data(cfg, towers)
    prep_seconds = time.time() - t0
    if dd.main:
        log.info("data: %s (%.1fs)", json.dumps(data.info), prep_seconds)

    module = PBRTrainModule(model, cfg.losses, stop_layer(model))
    module.freeze_unused()
    module.to(dd.device)
    runner: nn.Module = module
    if dd.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        runner = DDP(
            module,
            device_ids=[dd.local_rank] if dd.device.type == "cuda" else None,
            find_unused_parameters=True,
        )

    steps_per_epoch = len(rank_batches(epoch_order(data, 0, cfg.seed), cfg.batch_size, dd.rank, dd.world))
    total_steps = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch
    total_steps = max(1, total_steps)
    opt = torch.optim.AdamW(param_groups(module, cfg))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(total_steps, cfg.optim.warmup_steps, cfg.optim.min_lr_ratio)
    )

    step, epoch, step_in_epoch = 0, 0, 0
    history: dict[str, Any] = {"steps": [], "epochs": [], "evals": []}
    best: dict[str, Any] = {"mean_R@1": -1.0}
    train_seconds = 0.0
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if resume and last_path.is_file():
        payload = torch.load(last_path, map_location="cpu", weights_only=True)
        model.load_state_dict(payload["state_dict"])
        extra = payload["extra"]
        opt.load_state_dict(extra["optimizer"])
        sched.load_state_dict(extra["scheduler"])
        step, epoch, step_in_epoch = int(extra["step"]), int(extra["epoch"]), int(extra["step_in_epoch"])
        history = json.loads(extra["history"])
        best = json.loads(extra["best"])
        train_seconds = float(extra.get("train_seconds", 0.0))
        set_rng_state(extra["rng"])
        if dd.main:
            log.info("resumed from %s at step %d (epoch %d)", last_path, step, epoch)

    def save_last() -> None:
        if not dd.main:
            return
        save_checkpoint(
            last_path,
            model,
            extra={
                "train_config": cfg.to_dict(),
                "step": step,
                "epoch": epoch,
                "step_in_epoch": step_in_epoch,
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "rng": rng_state(),
                "history": json.dumps(history),
                "best": json.dumps(best),
                "train_seconds": train_seconds,
                "data": json.dumps(data.info),
            },
        )

    def summary() -> dict[str, Any]:
        return {
            "run_dir": str(run_dir),
            "step": step,
            "epoch": epoch,
            "total_steps": total_steps,
            "steps_per_epoch": steps_per_epoch,
            "world_size": dd.world,
            "train_seconds": round(train_seconds, 1),
            "prep_seconds": round(prep_seconds, 1),
            "seconds_per_epoch": round(train_seconds / max(1e-9, step / max(1, steps_per_epoch)), 2)
            if step
            else None,
            "data": data.info,
            "best": best,
            "history": history,
            "cache": {"builds": dict(towers.cache.builds), "hits": dict(towers.cache.hits)},
            "param_digest": module_digest(model),
        }

    def run_eval() -> None:
        nonlocal best
        if dd.main and cfg.data.val:
            val = validate(module, towers, cfg)
            slim = {
                k: {
                    m: v[m]
                    for m in ("R@1", "R@5", "R@10", "MRR", "macro_F1", "weighted_F1", "top1_distinct", "n")
                    if m in v
                }
                for k, v in val.items()
            }
            mean_r1 = float(np.mean([v["R@1"] for v in val.values()]))
            record = {"step": step, "epoch": epoch, "val": slim, "mean_R@1": mean_r1}
            history["evals"].append(record)
            log.info("step %d: mean val R@1 %.4f %s", step, mean_r1, json.dumps(slim))
            if mean_r1 > best["mean_R@1"]:
                best = dict(record)
                save_checkpoint(
                    best_path,
                    model,
                    extra={
                        "train_config": cfg.to_dict(),
                        "step": step,
                        "epoch": epoch,
                        "val": json.dumps(slim),
                    },
                )
        dd.barrier()

    def write_metrics() -> None:
        if dd.main:
            (run_dir / "metrics.json").write_text(json.dumps(summary(), indent=2) + "\n")
            write_plots(run_dir, history)

    log_every = max(1, steps_per_epoch // 25)
    acc: dict[str, list[float]] = defaultdict(list)
    epoch_acc: dict[str, list[float]] = defaultdict(list)
    module.train()
    while step < total_steps:
        order = epoch_order(data, epoch, cfg.seed)
        batches = rank_batches(order, cfg.batch_size, dd.rank, dd.world)
        bar = tqdm(
            total=len(batches),
            initial=step_in_epoch,
            desc=f"epoch {epoch}",
            disable=not (dd.main and cfg.progress),
            mininterval=2.0,
        )
        for rows in batches[step_in_epoch:]:
            started = time.time()
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * 101 + dd.rank)
            batch = batch_to(make_batch(data, rows, g), dd.device)
            loss, logs = runner(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.optim.grad_clip)
            opt.step()
            sched.step()
            model.clamp_logit_scale_()
            train_seconds += time.time() - started
            step += 1
            step_in_epoch += 1
            bar.update(1)
            for k, v in logs.items():
                acc[k].append(v)
                epoch_acc[k].append(v)
            if step % log_every == 0 or step == total_steps:
                rec = {"step": step, "epoch": epoch, "lr": sched.get_last_lr()[0]}
                rec.update({k: float(np.mean(v)) for k, v in acc.items()})
                history["steps"].append(rec)
                bar.set_postfix(loss=f"{rec.get('total', 0.0):.3f}")
                acc.clear()
            if cfg.eval_every and step % cfg.eval_every == 0:
                run_eval()
                save_last()
                write_metrics()
            if step >= total_steps:
                break
        bar.close()
        finished_epoch = step_in_epoch >= len(batches)
        if finished_epoch or step >= total_steps:
            history["epochs"].append(
                {
                    "epoch": epoch,
                    "step": step,
                    "complete": finished_epoch,
                    "train_seconds": round(train_seconds, 2),
                }
                | {k: float(np.mean(v)) for k, v in epoch_acc.items()}
            )
            epoch_acc.clear()
            if not cfg.eval_every or step % cfg.eval_every:
                run_eval()
        if finished_epoch:
            epoch += 1
            step_in_epoch = 0
        save_last()
        write_metrics()
    if not history["epochs"] and dd.main:  # resumed a finished run: nothing to do
        log.info("already at step %d of %d", step, total_steps)
    write_metrics()
    out = summary()
    dd.close()
    return out


# ------------------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description="Train a PBR sticker ranker on cached frozen-tower features."
    )
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--out", type=str, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.config, args.overrides, args.out)
    return train(cfg, resume=args.resume)


if __name__ == "__main__":
    main()
