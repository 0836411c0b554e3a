"""The training run's plots: loss curves and validation metrics over the steps (matplotlib, Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

LOSS_TERMS = ("contrastive", "inter_topic", "intra_topic", "emotion_kd", "matching", "total")


def write_plots(run_dir: Path, history: dict[str, Any]) -> None:
    """``loss_curves.png`` (each loss term over the steps) and ``val_metrics.png`` (validation R@1 and MRR per
    set over the evals), each only when the history has something to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _plot_losses(plt, run_dir, history.get("steps", []))
    _plot_evals(plt, run_dir, history.get("evals", []))


def _plot_losses(plt: Any, run_dir: Path, steps: list[dict[str, Any]]) -> None:
    terms = [t for t in LOSS_TERMS if any(t in r for r in steps)]
    if not terms:
        return
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


def _plot_evals(plt: Any, run_dir: Path, evals: list[dict[str, Any]]) -> None:
    if not evals:
        return
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
