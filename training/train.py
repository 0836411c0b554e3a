"""Train a PBR model on cached frozen-tower features (see :mod:`training.prepare`).

``python -m training.train --config configs/pbr-default.yaml [--set k=v ...] [--resume] [--out DIR]`` or
``stickerpick train ...``; under ``torchrun --nproc_per_node N`` it trains with DDP (gloo on CPU, NCCL on CUDA)
without changes. The run directory gets ``config.json``, ``last.pt`` (everything ``--resume`` needs),
``best.pt`` (best mean validation R@1 over the validation sets; never the test split), ``metrics.json`` and PNG
plots (loss terms, validation metrics).

How it reads: :func:`train` sets up a :class:`Run` (model, cached data, optimiser: :func:`setup`), restores a
:class:`~training.run_state.TrainState` from ``last.pt`` with ``--resume``, then calls :func:`train_one_epoch`
and :func:`end_epoch` until the step budget is spent; :func:`evaluate` scores the validation sets and keeps
``best.pt``.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from training.batching import batch_to, epoch_order, make_batch, rank_batches
from training.build import build_model, check_cacheable, stop_layer
from training.config import TrainConfig, load_config
from training.features import module_digest
from training.model import PBRModel
from training.module import PBRTrainModule
from training.plots import write_plots
from training.prepare import Towers, TrainData, make_towers, prepare_train_data
from training.run_state import Checkpointer, TrainState

log = logging.getLogger("training.train")

# The validation metrics an eval record keeps (the evaluator reports more).
EVAL_METRICS = ("R@1", "R@5", "R@10", "MRR", "macro_F1", "weighted_F1", "top1_distinct", "n")


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


def lr_lambda(total: int, warmup: int, min_ratio: float) -> Callable[[int], float]:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``min_ratio`` of the base rate."""

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


# ------------------------------------------------------------------------------------------------ validation
def validate(module: Any, towers: Any, cfg: TrainConfig, rerank: bool = False) -> dict[str, dict[str, Any]]:
    from training.data.format import StickerDataset
    from training.evaluate import evaluate as evaluate_dataset
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
            out[spec.label] = evaluate_dataset(
                ds, val_split(spec.split), scorer, sticker_text=text, max_samples=n
            )
    finally:
        module.train(was_training)
    return out


def _sticker_text_on(cfg: TrainConfig) -> bool:
    return bool(cfg.model.get("use_sticker_text", False))


# ------------------------------------------------------------------------------------------------ the run
@dataclass
class Run:
    """What one training run works with, built once by :func:`setup`; only :class:`TrainState` changes."""

    cfg: TrainConfig
    dd: Dist
    run_dir: Path
    model: PBRModel
    module: PBRTrainModule
    runner: nn.Module  # ``module``, or its DDP wrapper
    towers: Towers
    data: TrainData
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    steps_per_epoch: int
    total_steps: int
    prep_seconds: float
    checkpointer: Checkpointer


@dataclass
class LossMeter:
    """The loss terms since the last ``history["steps"]`` record (every ``log_every`` steps) and this epoch."""

    log_every: int
    recent: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    epoch: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, logs: dict[str, float]) -> None:
        for k, v in logs.items():
            self.recent[k].append(v)
            self.epoch[k].append(v)

    def take_recent(self) -> dict[str, float]:
        out = {k: float(np.mean(v)) for k, v in self.recent.items()}
        self.recent.clear()
        return out

    def take_epoch(self) -> dict[str, float]:
        out = {k: float(np.mean(v)) for k, v in self.epoch.items()}
        self.epoch.clear()
        return out


def setup(cfg: TrainConfig, dd: Dist, run_dir: Path, model: PBRModel | None = None) -> Run:
    """Model (``model``, else a fresh one), the cached training data (rank 0 builds the caches, the others
    then read them), the train module (DDP-wrapped across ranks), optimiser and schedule."""
    t0 = time.time()
    if model is None:
        model = build_model(cfg)
    else:
        check_cacheable(model.config)
    towers = make_towers(model, cfg)
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
    steps_per_epoch = len(rank_batches(epoch_order(data, 0, cfg.seed), cfg.batch_size, dd.rank, dd.world))
    total_steps = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch
    total_steps = max(1, total_steps)
    opt = torch.optim.AdamW(param_groups(module, cfg))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(total_steps, cfg.optim.warmup_steps, cfg.optim.min_lr_ratio)
    )
    return Run(
        cfg=cfg,
        dd=dd,
        run_dir=run_dir,
        model=model,
        module=module,
        runner=_ddp(module, dd),
        towers=towers,
        data=data,
        opt=opt,
        sched=sched,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        prep_seconds=prep_seconds,
        checkpointer=Checkpointer(run_dir, cfg, enabled=dd.main),
    )


def _ddp(module: nn.Module, dd: Dist) -> nn.Module:
    if not dd.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(
        module,
        device_ids=[dd.local_rank] if dd.device.type == "cuda" else None,
        find_unused_parameters=True,
    )


# ------------------------------------------------------------------------------------------------ training
def train(cfg: TrainConfig, resume: bool = False, model: PBRModel | None = None) -> dict[str, Any]:
    """Train; returns the summary written to ``metrics.json`` (on every rank; only rank 0 writes files).

    ``model``: start from these weights instead of a freshly built model (:mod:`training.finetune`)."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    dd = Dist()
    run_dir = Path(cfg.out_dir)
    if dd.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    seed_everything(cfg.seed)
    run = setup(cfg, dd, run_dir, model)
    state = TrainState()
    ckpt = run.checkpointer
    if resume and ckpt.resume(state, run.model, run.opt, run.sched) and dd.main:
        log.info("resumed from %s at step %d (epoch %d)", ckpt.last_path, state.step, state.epoch)

    meter = LossMeter(log_every=max(1, run.steps_per_epoch // 25))
    run.module.train()
    while state.step < run.total_steps:
        n_batches = train_one_epoch(run, state, meter)
        end_epoch(run, state, meter, n_batches)
    if not state.history["epochs"] and dd.main:  # resumed a finished run: nothing to do
        log.info("already at step %d of %d", state.step, run.total_steps)
    write_metrics(run, state)
    out = summary(run, state)
    dd.close()
    return out


def train_one_epoch(run: Run, state: TrainState, meter: LossMeter) -> int:
    """The rest of the current epoch (from ``state.step_in_epoch``), stopping at the step budget; with
    ``eval_every``, evaluates and saves every that many steps. Returns the epoch's number of batches."""
    from tqdm import tqdm

    cfg, dd = run.cfg, run.dd
    batches = rank_batches(epoch_order(run.data, state.epoch, cfg.seed), cfg.batch_size, dd.rank, dd.world)
    bar = tqdm(
        total=len(batches),
        initial=state.step_in_epoch,
        desc=f"epoch {state.epoch}",
        disable=not (dd.main and cfg.progress),
        mininterval=2.0,
    )
    for rows in batches[state.step_in_epoch :]:
        logs = train_step(run, state, rows)
        bar.update(1)
        meter.add(logs)
        if state.step % meter.log_every == 0 or state.step == run.total_steps:
            rec = {"step": state.step, "epoch": state.epoch, "lr": run.sched.get_last_lr()[0]}
            rec.update(meter.take_recent())
            state.history["steps"].append(rec)
            bar.set_postfix(loss=f"{rec.get('total', 0.0):.3f}")
        if cfg.eval_every and state.step % cfg.eval_every == 0:
            evaluate(run, state)
            save_last(run, state)
            write_metrics(run, state)
        if state.step >= run.total_steps:
            break
    bar.close()
    return len(batches)


def train_step(run: Run, state: TrainState, rows: Tensor) -> dict[str, float]:
    """One optimiser step on the batch of sample ``rows``; returns its loss terms."""
    cfg, dd = run.cfg, run.dd
    started = time.time()
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + state.step * 101 + dd.rank)
    batch = batch_to(make_batch(run.data, rows, g), dd.device)
    loss, logs = run.runner(batch)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.optim.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.module.parameters(), cfg.optim.grad_clip)
    run.opt.step()
    run.sched.step()
    run.model.clamp_logit_scale_()
    state.train_seconds += time.time() - started
    state.step += 1
    state.step_in_epoch += 1
    return dict(logs)


def end_epoch(run: Run, state: TrainState, meter: LossMeter, n_batches: int) -> None:
    """After :func:`train_one_epoch`: record the epoch (when it finished, or the budget ran out in it),
    evaluate unless ``eval_every`` just did, move to the next epoch if this one is done, save."""
    finished = state.step_in_epoch >= n_batches
    if finished or state.step >= run.total_steps:
        state.history["epochs"].append(
            {
                "epoch": state.epoch,
                "step": state.step,
                "complete": finished,
                "train_seconds": round(state.train_seconds, 2),
            }
            | meter.take_epoch()
        )
        if not run.cfg.eval_every or state.step % run.cfg.eval_every:
            evaluate(run, state)
    if finished:
        state.epoch += 1
        state.step_in_epoch = 0
    save_last(run, state)
    write_metrics(run, state)


def evaluate(run: Run, state: TrainState) -> None:
    """Score the validation sets (main rank), record them, and keep ``best.pt`` on a new best mean R@1."""
    if run.dd.main and run.cfg.data.val:
        val = validate(run.module, run.towers, run.cfg)
        slim = {k: {m: v[m] for m in EVAL_METRICS if m in v} for k, v in val.items()}
        mean_r1 = float(np.mean([v["R@1"] for v in val.values()]))
        record = {"step": state.step, "epoch": state.epoch, "val": slim, "mean_R@1": mean_r1}
        state.history["evals"].append(record)
        log.info("step %d: mean val R@1 %.4f %s", state.step, mean_r1, json.dumps(slim))
        if mean_r1 > state.best["mean_R@1"]:
            state.best = dict(record)
            run.checkpointer.save_best(state, run.model, slim)
    run.dd.barrier()


def save_last(run: Run, state: TrainState) -> None:
    run.checkpointer.save_last(state, run.model, run.opt, run.sched, run.data.info)


def summary(run: Run, state: TrainState) -> dict[str, Any]:
    step, spe = state.step, run.steps_per_epoch
    return {
        "run_dir": str(run.run_dir),
        "step": step,
        "epoch": state.epoch,
        "total_steps": run.total_steps,
        "steps_per_epoch": spe,
        "world_size": run.dd.world,
        "train_seconds": round(state.train_seconds, 1),
        "prep_seconds": round(run.prep_seconds, 1),
        "seconds_per_epoch": round(state.train_seconds / max(1e-9, step / max(1, spe)), 2) if step else None,
        "data": run.data.info,
        "best": state.best,
        "history": state.history,
        "cache": {"builds": dict(run.towers.cache.builds), "hits": dict(run.towers.cache.hits)},
        "param_digest": module_digest(run.model),
    }


def write_metrics(run: Run, state: TrainState) -> None:
    if run.dd.main:
        (run.run_dir / "metrics.json").write_text(json.dumps(summary(run, state), indent=2) + "\n")
        write_plots(run.run_dir, state.history)


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
