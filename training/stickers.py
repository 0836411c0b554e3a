"""The sticker table of a training run: every sticker of the training datasets, once, with what it shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from engine.preprocess import sticker_text
from training.data.format import StickerDataset


@dataclass
class StickerTable:
    """Stickers of some datasets, keyed by (set_id, sticker_id); the topic of a sticker is its set."""

    keys: list[tuple[str, str]] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    alts: list[str | None] = field(default_factory=list)
    index: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, key: tuple[str, str], path: Path, alt: str | None) -> int:
        if key not in self.index:
            self.index[key] = len(self.keys)
            self.keys.append(key)
            self.paths.append(path)
            self.alts.append(alt)
        elif alt and not self.alts[self.index[key]]:
            self.alts[self.index[key]] = alt
        return self.index[key]

    def add_dataset(self, ds: StickerDataset) -> None:
        for (set_id, sid), path in sorted(ds.index.paths.items()):
            self.add((set_id, sid), path, ds.index.alt(sid, set_id))

    def __len__(self) -> int:
        return len(self.keys)

    def topics(self) -> Tensor:
        codes: dict[str, int] = {}
        return torch.tensor([codes.setdefault(s, len(codes)) for s, _ in self.keys], dtype=torch.long)

    def identities(self) -> Tensor:
        """(S,) what each sticker *shows*: stickers of different sets with the same emoji share an id (the same
        emoji in another art style is the same thing); a sticker without an emoji is only itself."""
        from training.metrics import normalise_alt

        codes: dict[str, int] = {}
        out = []
        for key, alt in zip(self.keys, self.alts, strict=True):
            norm = normalise_alt(alt)
            out.append(codes.setdefault(f"emoji:{norm}" if norm else f"key:{key[0]}/{key[1]}", len(codes)))
        return torch.tensor(out, dtype=torch.long)

    def partners(self, identity: Tensor, topics: Tensor) -> tuple[list[list[int]], int]:
        """Per sticker, the stickers of *other* sets that show the same thing; and the number of identities."""
        groups: dict[int, list[int]] = {}
        for i, ident in enumerate(identity.tolist()):
            groups.setdefault(ident, []).append(i)
        partners = [
            [j for j in groups[ident] if topics[j] != topics[i]] for i, ident in enumerate(identity.tolist())
        ]
        return partners, len(groups)

    def texts(self) -> list[str]:
        return [sticker_text(a) for a in self.alts]
