"""The model registry: every model version kept with its manifest and metrics, one served.

Layout under ``<home>/models`` (``Settings.models_dir``)::

    <version>/model/            the ONNX model directory the engine serves (manifest.json, towers, tokenizer)
    <version>/checkpoint.pt     the PyTorch checkpoint it was exported from (what the next retrain starts from)
    <version>/info.json         how it was made: parent version, data, metrics of candidate and serving model,
                                the promotion decision
    current                     the served version's name, written atomically (temp file + rename)
    history.jsonl               every promotion and rollback, oldest first

Running bots re-read ``current`` every ``model_check_s`` and swap models without a restart
(:meth:`engine.service.StickerService.check_model`). No torch here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.fsutil import atomic_write_text

VERSION_RE = re.compile(r"^v(\d{4})(?:-[\w.-]+)?$")


class RegistryError(ValueError):
    pass


@dataclass(frozen=True)
class ModelVersion:
    name: str
    path: Path
    info: dict[str, Any]
    manifest: dict[str, Any]

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def checkpoint(self) -> Path | None:
        p = self.path / "checkpoint.pt"
        return p if p.is_file() else None


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ reading
    def versions(self) -> list[ModelVersion]:
        if not self.root.is_dir():
            return []
        out = [
            self.get(p.name) for p in sorted(self.root.iterdir()) if VERSION_RE.match(p.name) and p.is_dir()
        ]
        return [v for v in out if v is not None]

    def get(self, name: str) -> ModelVersion | None:
        path = self.root / name
        manifest_file = path / "model" / "manifest.json"
        if not VERSION_RE.match(name) or not manifest_file.is_file():
            return None
        info_file = path / "info.json"
        info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.is_file() else {}
        return ModelVersion(name, path, info, json.loads(manifest_file.read_text(encoding="utf-8")))

    def current_name(self) -> str | None:
        try:
            name = (self.root / "current").read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return name or None

    def current_model_dir(self) -> Path | None:
        """The model directory of the promoted version, if any (without reading its manifest)."""
        name = self.current_name()
        model = self.root / name / "model" if name and VERSION_RE.match(name) else None
        return model if model is not None and (model / "manifest.json").is_file() else None

    def current(self) -> ModelVersion | None:
        name = self.current_name()
        return self.get(name) if name else None

    def history(self) -> list[dict[str, Any]]:
        path = self.root / "history.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    # ------------------------------------------------------------------ writing
    def add(
        self,
        model_dir: Path,
        checkpoint: Path | None = None,
        info: dict[str, Any] | None = None,
        label: str | None = None,
    ) -> ModelVersion:
        """Copy a model directory (and its checkpoint) in as the next version; returns it (not promoted)."""
        model_dir = Path(model_dir)
        if not (model_dir / "manifest.json").is_file():
            raise RegistryError(f"{model_dir} is not a model directory (no manifest.json)")
        self.root.mkdir(parents=True, exist_ok=True)
        numbers = [int(m.group(1)) for p in self.root.iterdir() if (m := VERSION_RE.match(p.name))]
        name = f"v{max(numbers, default=0) + 1:04d}"
        if label:
            name += "-" + re.sub(r"[^\w.-]+", "-", label).strip("-")[:40]
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.root))
        try:
            shutil.copytree(model_dir, tmp / "model")
            if checkpoint is not None:
                shutil.copy2(checkpoint, tmp / "checkpoint.pt")
            record = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(info or {})}
            (tmp / "info.json").write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
            os.replace(tmp, self.root / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        version = self.get(name)
        assert version is not None
        return version

    def update_info(self, name: str, **fields: Any) -> None:
        path = self.root / name / "info.json"
        info = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        info.update(fields)
        atomic_write_text(path, json.dumps(info, indent=2, default=str) + "\n")

    def promote(self, name: str, reason: str = "promote") -> ModelVersion:
        version = self.get(name)
        if version is None:
            known = ", ".join(v.name for v in self.versions()) or "none"
            raise RegistryError(f"no model version {name!r} in {self.root} (versions: {known})")
        previous = self.current_name()
        atomic_write_text(self.root / "current", name + "\n")
        entry = {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "action": reason,
            "version": name,
            "previous": previous,
        }
        with (self.root / "history.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        return version

    def rollback(self) -> ModelVersion:
        """Serve the version that was current before the current one was promoted."""
        current = self.current_name()
        if current is None:
            raise RegistryError("nothing is promoted yet: there is nothing to roll back")
        for entry in reversed(self.history()):
            if entry["version"] == current and entry.get("previous") and entry["action"] != "rollback":
                return self.promote(entry["previous"], reason="rollback")
        raise RegistryError(f"{current} has no earlier version to roll back to")
