"""`stickerpick retrain`: fine-tune the serving model on the chats' logs plus the base data, evaluate
candidate and serving model on the same held-back slice of logs and on the standard validation sets, and promote
the candidate only if it is not worse by ``retrain_margin`` points of R@1 on either.

The candidate is the last checkpoint of a fixed-length fine-tuning run (no model selection: the held-back slice
decides promotion, so it must not also pick the checkpoint). Both models are scored as the bots serve them,
through onnxruntime (``EngineScorer``) on their exported model directories.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.registry import ModelRegistry, ModelVersion
from engine.samples import usage_prior
from retraining.settings import RetrainSettings
from training.chatlogs import read_meta
from training.config import TrainConfig, apply_override, read_config_file
from training.data.format import Sample, StickerDataset, available_splits
from training.evaluate import EngineScorer, evaluate

log = logging.getLogger(__name__)

LOGS_NAME = "chat-logs"
SLIM = ("R@1", "R@2", "R@5", "MRR", "n")


class RetrainError(RuntimeError):
    pass


# ------------------------------------------------------------------------------------------------ usage prior
class PriorScorer:
    """Adds the serving engine's usage prior to another scorer's scores: per chat, how often each sticker was
    sent or picked in the *train* part of the logs (what the chat had logged before the held-back slice)."""

    def __init__(self, base: Any, logs: Path, weight: float, split: str = "val") -> None:
        self.base, self.weight = base, weight
        self.name = f"{base.name} + usage prior ×{weight:g}"
        ds = StickerDataset.open(logs)
        counts: dict[str, dict[int, int]] = {}
        for sample, meta in zip(ds.load("train"), read_meta(logs, "train"), strict=True):
            c = counts.setdefault(meta["chat"], {})
            sid = int(sample.current.sticker_id)
            c[sid] = c.get(sid, 0) + 1
        self.counts = counts
        self.chat_of = {
            s.key(): m["chat"] for s, m in zip(ds.load(split), read_meta(logs, split), strict=True)
        }

    def score(
        self,
        samples: Sequence[Sample],
        candidates: Sequence[Sequence[str]],
        dataset: StickerDataset,
        sticker_text: bool,
    ) -> list[np.ndarray]:
        base = self.base.score(samples, candidates, dataset, sticker_text)
        out = []
        for s, cands, sc in zip(samples, candidates, base, strict=True):
            counts = self.counts.get(self.chat_of.get(s.key(), ""), {})
            ids = np.array([int(c) for c in cands], dtype=np.int64)
            out.append(np.asarray(sc, dtype=np.float64) + self.weight * usage_prior(ids, counts))
        return out


# ------------------------------------------------------------------------------------------------ pieces
def base_config(settings: RetrainSettings, checkpoint_extra: dict[str, Any]) -> dict[str, Any]:
    if settings.retrain_config.is_file():
        return read_config_file(settings.retrain_config)
    if "train_config" in checkpoint_extra:
        return dict(checkpoint_extra["train_config"])
    raise RetrainError(
        f"no training config: {settings.retrain_config} is missing and the checkpoint has none"
    )


def retrain_config(
    settings: RetrainSettings, base: dict[str, Any], logs: Path, out_dir: Path, overrides: Sequence[str] = ()
) -> tuple[TrainConfig, list[dict[str, Any]]]:
    """The fine-tuning config (base train data that exists + the logs' train split) and the standard
    validation sets to evaluate on (training itself validates on nothing: see the module doc)."""
    d = json.loads(json.dumps(base))
    data = d.setdefault("data", {})
    train = [t for t in data.get("train", []) if Path(t["path"]).is_dir()]
    train.append({"path": str(logs), "weight": settings.retrain_log_weight, "name": LOGS_NAME})
    standard = [v for v in data.get("val", []) if Path(v["path"]).is_dir()]
    data["train"], data["val"] = train, []
    d["epochs"] = settings.retrain_epochs
    d["max_steps"] = None
    optim = d.setdefault("optim", {})
    optim["lr"] = float(optim.get("lr", 1e-3)) * settings.retrain_lr_scale
    optim["text_lr"] = float(optim.get("text_lr", 3e-5)) * settings.retrain_lr_scale
    optim["warmup_steps"] = min(int(optim.get("warmup_steps", 100)), 20)
    d["out_dir"] = str(out_dir)
    d["progress"] = False
    for o in overrides:
        apply_override(d, o)
    d.pop("model", None)  # the checkpoint's architecture (training.finetune)
    return TrainConfig.from_dict(d), standard


def evaluate_model(
    model_dir: Path,
    logs: Path,
    standard: Sequence[dict[str, Any]],
    max_samples: int | None = None,
    prior_weight: float = 0.0,
) -> dict[str, dict[str, Any]]:
    from engine.ranking import load_ranker

    ranker = load_ranker("auto", model_dir)
    text_on = bool(getattr(ranker, "use_sticker_text", False))
    scorer: Any = EngineScorer(ranker)
    out: dict[str, dict[str, Any]] = {}
    out[LOGS_NAME] = _slim(evaluate(StickerDataset.open(logs), "val", scorer, sticker_text=text_on))
    if prior_weight > 0:
        prior = PriorScorer(scorer, logs, prior_weight)
        out[f"{LOGS_NAME}+prior"] = _slim(
            evaluate(StickerDataset.open(logs), "val", prior, sticker_text=text_on)
        )
    for spec in standard:
        ds = StickerDataset.open(spec["path"])
        split = spec.get("split", "val")
        if split not in available_splits(spec["path"]):
            continue
        name = spec.get("name") or Path(spec["path"]).name
        out[name] = _slim(evaluate(ds, split, scorer, sticker_text=text_on, max_samples=max_samples))
    return out


def _slim(m: dict[str, Any]) -> dict[str, Any]:
    return {k: round(float(m[k]), 2) if k != "n" else int(m[k]) for k in SLIM if k in m}


def decide(
    candidate: dict[str, dict[str, Any]], serving: dict[str, dict[str, Any]], margin: float
) -> tuple[bool, list[str]]:
    """Promote unless R@1 drops by more than ``margin`` on the logs or on the mean of the standard sets."""
    reasons: list[str] = []
    ok = True
    c, s = candidate[LOGS_NAME]["R@1"], serving[LOGS_NAME]["R@1"]
    if c < s - margin:
        ok = False
    reasons.append(f"held-back logs R@1 {c:.2f} vs {s:.2f} (serving)")
    std = [k for k in candidate if k in serving and not k.startswith(LOGS_NAME)]
    if std:
        cm = float(np.mean([candidate[k]["R@1"] for k in std]))
        sm = float(np.mean([serving[k]["R@1"] for k in std]))
        if cm < sm - margin:
            ok = False
        reasons.append(f"standard validation mean R@1 {cm:.2f} vs {sm:.2f} over {len(std)} sets")
    return ok, reasons


# ------------------------------------------------------------------------------------------------ the loop
def retrain(
    settings: RetrainSettings,
    logs: Path,
    work_dir: Path,
    *,
    base_checkpoint: Path | None = None,
    promote: bool = True,
    overrides: Sequence[str] = (),
    quantize: bool | None = None,
    max_eval_samples: int | None = None,
) -> dict[str, Any]:
    """Fine-tune, export, evaluate both, register the candidate, promote it if it passes. Returns a report."""
    started = time.time()
    n_logs = log_counts(settings, logs)
    registry = ModelRegistry(settings.models_dir)
    current, serving_dir, base_checkpoint = serving_version(registry, settings, base_checkpoint)
    ckpt, candidate_dir, summary, standard = train_candidate(
        settings, logs, work_dir, base_checkpoint, overrides, quantize, current
    )
    w = settings.usage_prior_weight or 0.0
    cand_m = evaluate_model(candidate_dir, logs, standard, max_eval_samples, prior_weight=w)
    serv_m = evaluate_model(serving_dir, logs, standard, max_eval_samples, prior_weight=w)
    ok, reasons = decide(cand_m, serv_m, settings.retrain_margin)
    info = {
        "parent": current.name,
        "base_checkpoint": str(base_checkpoint),
        "logs": {"path": str(logs), "samples": n_logs},
        "train": {"steps": summary["step"], "seconds": summary["train_seconds"], "data": summary["data"]},
        "metrics": {"candidate": cand_m, "serving": serv_m},
        "margin": settings.retrain_margin,
        "passed": ok,
        "reasons": reasons,
    }
    version = registry.add(candidate_dir, ckpt, info=info, label="retrain")
    promoted = bool(ok and promote)
    if promoted:
        registry.promote(version.name, reason="retrain")
    registry.update_info(version.name, promoted=promoted)
    return {
        "version": version.name,
        "promoted": promoted,
        "passed": ok,
        "reasons": reasons,
        "metrics": info["metrics"],
        "serving_was": current.name,
        "seconds": round(time.time() - started, 1),
    }


def log_counts(settings: RetrainSettings, logs: Path) -> dict[str, int]:
    """Samples per split of the logs; refused when there are too few to retrain on or none held back."""
    n_logs = {
        s: len(StickerDataset.open(logs).load(s)) for s in ("train", "val") if s in available_splits(logs)
    }
    if n_logs.get("train", 0) + n_logs.get("val", 0) < settings.retrain_min_samples or not n_logs.get("val"):
        raise RetrainError(
            f"too few logged samples to retrain ({n_logs}; need {settings.retrain_min_samples}, some held back)"
        )
    return n_logs


def serving_version(
    registry: ModelRegistry, settings: RetrainSettings, base_checkpoint: Path | None
) -> tuple[ModelVersion, Path, Path]:
    """The serving model's version, its model directory and the checkpoint to fine-tune (``base_checkpoint``,
    else the version's, else the settings'). An empty registry first gets the serving model as v0001, so
    there is something to roll back to."""
    serving_dir = settings.serving_model_dir()
    current = registry.current()
    if base_checkpoint is None:
        base_checkpoint = (current.checkpoint if current else None) or settings.retrain_base_checkpoint
    if base_checkpoint is None or not Path(base_checkpoint).is_file():
        raise RetrainError(
            "no checkpoint of the serving model to fine-tune: set STICKERPICK_RETRAIN_BASE_CHECKPOINT "
            "(e.g. var/runs/pbr-default/best.pt) or pass --base; the shipped model's checkpoint is rebuilt by "
            "`bash scripts/prepare_data.sh DATA_ROOT && stickerpick train --config configs/pbr-default.yaml`"
        )
    if current is None:
        current = registry.add(
            serving_dir,
            Path(base_checkpoint),
            info={"source": str(serving_dir), "note": "serving model"},
            label="base",
        )
        registry.promote(current.name, reason="import")
        serving_dir = current.model_dir
    return current, serving_dir, base_checkpoint


def train_candidate(
    settings: RetrainSettings,
    logs: Path,
    work_dir: Path,
    base_checkpoint: Path,
    overrides: Sequence[str],
    quantize: bool | None,
    serving: ModelVersion,
) -> tuple[Path, Path, dict[str, Any], list[dict[str, Any]]]:
    """Fine-tune from ``base_checkpoint`` and export the last checkpoint to ``work_dir/candidate``, int8 as
    ``quantize`` says, else as the serving model is. Returns that checkpoint, the candidate's model directory,
    the training summary and the standard validation sets."""
    from export.distilled import carry_multilingual
    from export.pbr import export_pbr
    from export.pictures import carry_pictures
    from training.finetune import finetune
    from training.model import load_checkpoint

    extra = load_checkpoint(base_checkpoint).extra
    cfg, standard = retrain_config(settings, base_config(settings, extra), logs, work_dir / "run", overrides)
    summary = finetune(cfg, Path(base_checkpoint))
    ckpt = Path(cfg.out_dir) / "last.pt"
    if quantize is None:
        quantize = bool((serving.manifest.get("quantized") or {}).get("text"))
    candidate_dir = work_dir / "candidate"
    export_pbr(ckpt, candidate_dir, quantize=quantize)
    # The serving model's tower for other languages is not retrained (chat logs teach the English tower): the
    # candidate keeps it, with the projection head it was distilled against.
    carry_multilingual(serving.model_dir, candidate_dir)
    # Its bank of known pictures is the serving model's art, embedded again by the candidate's image tower.
    carry_pictures(serving.model_dir, candidate_dir)
    return ckpt, candidate_dir, summary, standard
