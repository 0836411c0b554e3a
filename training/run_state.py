"""What a training run carries from step to step, and the checkpoints that save and restore it.

:class:`TrainState` is everything ``--resume`` needs beyond the weights, the optimiser and the scheduler:
where the run is (step, epoch, step within the epoch), its history, its best validation record, the training
time so far, and (saved with it) the random generators' states. :class:`Checkpointer` writes ``last.pt``
(the whole state) and ``best.pt`` (the weights of the best validation record), and restores from ``last.pt``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.config import TrainConfig
from training.model import save_checkpoint


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


def _empty_history() -> dict[str, Any]:
    return {"steps": [], "epochs": [], "evals": []}


@dataclass
class TrainState:
    """Where a run is. ``history``: ``steps`` (averaged losses every few steps), ``epochs`` (per epoch) and
    ``evals`` (validation records); ``best``: the eval record of the best mean validation R@1 so far."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    history: dict[str, Any] = field(default_factory=_empty_history)
    best: dict[str, Any] = field(default_factory=lambda: {"mean_R@1": -1.0})
    train_seconds: float = 0.0


@dataclass
class Checkpointer:
    """``last.pt`` and ``best.pt`` of one run directory; only the main rank (``enabled``) writes."""

    run_dir: Path
    cfg: TrainConfig
    enabled: bool = True

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    def resume(self, state: TrainState, model: nn.Module, opt: Any, sched: Any) -> bool:
        """Restore ``state``, the weights, the optimiser, the scheduler and the random generators from
        ``last.pt``; False (nothing changed) when there is none."""
        if not self.last_path.is_file():
            return False
        payload = torch.load(self.last_path, map_location="cpu", weights_only=True)
        model.load_state_dict(payload["state_dict"])
        extra = payload["extra"]
        opt.load_state_dict(extra["optimizer"])
        sched.load_state_dict(extra["scheduler"])
        state.step, state.epoch = int(extra["step"]), int(extra["epoch"])
        state.step_in_epoch = int(extra["step_in_epoch"])
        state.history = json.loads(extra["history"])
        state.best = json.loads(extra["best"])
        state.train_seconds = float(extra.get("train_seconds", 0.0))
        set_rng_state(extra["rng"])
        return True

    def save_last(
        self, state: TrainState, model: nn.Module, opt: Any, sched: Any, data_info: dict[str, Any]
    ) -> None:
        if not self.enabled:
            return
        save_checkpoint(
            self.last_path,
            model,
            extra={
                "train_config": self.cfg.to_dict(),
                "step": state.step,
                "epoch": state.epoch,
                "step_in_epoch": state.step_in_epoch,
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "rng": rng_state(),
                "history": json.dumps(state.history),
                "best": json.dumps(state.best),
                "train_seconds": state.train_seconds,
                "data": json.dumps(data_info),
            },
        )

    def save_best(self, state: TrainState, model: nn.Module, val: dict[str, Any]) -> None:
        save_checkpoint(
            self.best_path,
            model,
            extra={
                "train_config": self.cfg.to_dict(),
                "step": state.step,
                "epoch": state.epoch,
                "val": json.dumps(val),
            },
        )
