from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch

from training._io import atomic_torch_save
from training.model._config import PBRConfig
from training.model._pbr import PBRModel, build_pbr

CHECKPOINT_FORMAT = 1


class LoadedCheckpoint(NamedTuple):
    model: PBRModel
    config: PBRConfig
    extra: dict[str, Any]
    meta: dict[str, Any]


def _versions() -> dict[str, str]:
    out = {"torch": str(torch.__version__)}
    try:
        import transformers

        out["transformers"] = str(transformers.__version__)
    except ImportError:  # pragma: no cover
        pass
    return out


def save_checkpoint(
    path: str | Path, model: PBRModel, config: PBRConfig | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Write state dict + config dict + metadata atomically (temp file in the same folder, then rename).

    ``extra`` (step, metrics, data description…) must hold plain Python values and tensors only: checkpoints
    load with ``weights_only=True``.
    """
    path = Path(path)
    config = config if config is not None else model.config
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
        "meta": {"versions": _versions(), "num_parameters": sum(p.numel() for p in model.parameters())},
    }
    atomic_torch_save(payload, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the architecture from the stored config (no pretrained files needed) and load the weights."""
    payload = torch.load(Path(path), map_location=map_location, weights_only=True)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: checkpoint format {payload.get('format')!r}, expected {CHECKPOINT_FORMAT}")
    config = PBRConfig.from_dict(payload["config"])
    model = build_pbr(config, pretrained=False)
    model.load_state_dict(payload["state_dict"], strict=True)
    model.eval()
    return LoadedCheckpoint(model, model.config, payload.get("extra", {}), payload.get("meta", {}))
