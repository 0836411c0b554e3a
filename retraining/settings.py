"""Retraining's settings (`stickerpick retrain`, `stickerpick data export`), on top of the engine's.

The serving engine never reads these; the CLI loads them only in the commands that retrain or export logs.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from engine.settings import REPO_ROOT, Settings


class RetrainSettings(Settings):
    """The engine's settings plus how logged samples are exported and a candidate model is trained and
    judged."""

    # Salt of the user-id hashes in `stickerpick data export` (never written out); unset: a random salt per
    # export (hashes then do not link across exports).
    export_salt: SecretStr | None = None
    # The newest fraction (by time) of the logged samples held back as the validation slice.
    retrain_val_fraction: float = Field(default=0.2, gt=0, lt=1)
    # The training config whose base datasets and validation sets a retrain reuses.
    retrain_config: Path = Field(default=REPO_ROOT / "configs" / "pbr-default.yaml")
    # Checkpoint of the serving model when the registry has none (e.g. var/runs/pbr-default/best.pt).
    retrain_base_checkpoint: Path | None = None
    retrain_epochs: int = Field(default=1, ge=1)
    retrain_log_weight: float = Field(default=2.0, gt=0)  # sampling weight of the chat logs vs base data
    retrain_lr_scale: float = Field(default=0.3, gt=0)  # fine-tuning learning rates = config's × this
    # Promote only if the candidate's R@1 (points) is at least the serving model's minus this, on the
    # held-back logs and on the mean of the standard validation sets.
    retrain_margin: float = Field(default=0.5, ge=0)
    retrain_min_samples: int = Field(default=20, ge=1)

    def hash_salt(self) -> bytes | None:
        """The salt of the user-id hashes in an export, if one is set (else each export draws its own)."""
        return self.export_salt.get_secret_value().encode() if self.export_salt else None
