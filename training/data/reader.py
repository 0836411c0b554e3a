"""Reading a dataset folder: its splits, its sticker files and emoji mappings, each sample's candidates,
and a sticker file as an image."""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from training.data.records import (
    CANDIDATE_SEED,
    EMOJI_MAPPING,
    NUM_CANDIDATES,
    SPLITS,
    STICKER_DIR,
    STICKER_SUFFIXES,
    DatasetError,
    Sample,
    split_file,
)


def iter_split(root: Path | str, split: str) -> Iterator[Sample]:
    """The samples of ``release_<split>.json`` in file order; blank lines are skipped."""
    path = split_file(root, split)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist (splits here: {', '.join(available_splits(root)) or 'none'})"
        )
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield Sample.from_json(json.loads(line))
            except (json.JSONDecodeError, DatasetError) as exc:
                raise DatasetError(f"{path}:{lineno}: {exc}") from exc


def load_split(root: Path | str, split: str) -> list[Sample]:
    return list(iter_split(root, split))


def available_splits(root: Path | str) -> list[str]:
    return [s for s in SPLITS if split_file(root, s).is_file()]


def read_emoji_mapping(path: Path) -> dict[str, str]:
    """``<sticker_id>\\t<emoji>`` lines → {sticker_id: emoji}. A line without a tab splits on the first blank."""
    mapping: dict[str, str] = {}
    if not path.is_file():
        return mapping
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip("\r\n")
        if not line.strip():
            continue
        parts = line.split("\t", 1) if "\t" in line else line.split(None, 1)
        if len(parts) == 2 and parts[0].strip() and parts[1].strip():
            mapping[parts[0].strip()] = parts[1].strip()
    return mapping


@dataclass
class StickerIndex:
    """Every sticker file of a dataset: (set_id, sticker_id) → path, and each set's emoji mapping."""

    root: Path
    paths: dict[tuple[str, str], Path] = field(default_factory=dict)
    emoji: dict[str, dict[str, str]] = field(default_factory=dict)  # set_id → {sticker_id: emoji}
    _by_sticker: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @classmethod
    def scan(cls, root: Path | str) -> StickerIndex:
        root = Path(root)
        index = cls(root=root)
        base = root / STICKER_DIR
        if not base.is_dir():
            return index
        rank = {s: i for i, s in enumerate(STICKER_SUFFIXES)}
        for set_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
            set_id = set_dir.name
            best: dict[str, Path] = {}
            with os.scandir(set_dir) as it:
                for entry in it:
                    suffix = os.path.splitext(entry.name)[1].lower()
                    if entry.name.startswith(".") or suffix not in rank or not entry.is_file():
                        continue
                    sid = entry.name[: -len(suffix)]
                    if sid not in best or rank[suffix] < rank[best[sid].suffix.lower()]:
                        best[sid] = Path(entry.path)
            for sid in sorted(best):
                index.paths[(set_id, sid)] = best[sid]
                index._by_sticker.setdefault(sid, []).append(set_id)
            index.emoji[set_id] = read_emoji_mapping(set_dir / EMOJI_MAPPING)
        return index

    def __len__(self) -> int:
        return len(self.paths)

    def __contains__(self, key: object) -> bool:
        return key in self.paths

    def sets(self) -> list[str]:
        return sorted({s for s, _ in self.paths} | set(self.emoji))

    def stickers_of(self, set_id: str) -> list[str]:
        """The sticker ids of one set, sorted as strings (the pool default candidates are drawn from)."""
        return sorted(sid for s, sid in self.paths if s == str(set_id))

    def path(self, set_id: str, sticker_id: str) -> Path:
        try:
            return self.paths[(str(set_id), str(sticker_id))]
        except KeyError:
            raise KeyError(
                f"no file for sticker {sticker_id!r} of set {set_id!r} under {self.root}"
            ) from None

    def set_of(self, sticker_id: str) -> str:
        """The set a sticker id belongs to (candidates name stickers only); an error if it is ambiguous."""
        sets = self._by_sticker.get(str(sticker_id), [])
        if len(sets) != 1:
            what = "no set has" if not sets else f"sets {sets} all have"
            raise KeyError(f"{what} sticker {sticker_id!r}: candidate ids must be unique across sets")
        return sets[0]

    def find(self, sticker_id: str) -> Path:
        return self.path(self.set_of(sticker_id), sticker_id)

    def alt(self, sticker_id: str, set_id: str | None = None) -> str | None:
        """The sticker's emoji from its set's ``emoji_mapping.txt``, or None."""
        sid = str(sticker_id)
        if set_id is None:
            sets = self._by_sticker.get(sid) or [s for s, m in self.emoji.items() if sid in m]
            for s in sets:
                if sid in self.emoji.get(s, {}):
                    return self.emoji[s][sid]
            return None
        return self.emoji.get(str(set_id), {}).get(sid)


def default_candidates(
    sample: Sample,
    pool: Sequence[str],
    n: int = NUM_CANDIDATES,
    seed: int = CANDIDATE_SEED,
) -> list[str]:
    """StickerChat's candidates where a sample lists none: the positive plus ``n - 1`` others from ``pool``.

    ``pool`` is the positive's set (``StickerIndex.stickers_of``). The draw depends only on ``seed``, the
    sample's content and the pool, so a sample gets the same candidates in any file, order or process. The
    result is shuffled (order carries no information) and has no duplicates; a pool smaller than ``n`` gives
    all of it.
    """
    positive = sample.current.sticker_id
    others = sorted({str(s) for s in pool} - {positive})
    rng = random.Random(int(hashlib.sha256(f"{seed}:{sample.key()}".encode()).hexdigest()[:16], 16))
    chosen = [*rng.sample(others, min(n - 1, len(others))), positive]
    rng.shuffle(chosen)
    return chosen


def candidates_for(sample: Sample, index: StickerIndex, seed: int = CANDIDATE_SEED) -> list[str]:
    """The sample's own candidate list, or the default draw from its set."""
    if sample.candidates is not None:
        return list(sample.candidates)
    pool = index.stickers_of(sample.current.set_id)
    if not pool:
        raise KeyError(f"set {sample.current.set_id!r} has no sticker files under {index.root / STICKER_DIR}")
    return default_candidates(sample, pool, seed=seed)


def alt_mapping(index: StickerIndex, samples: Iterable[Sample] = ()) -> dict[str, str]:
    """sticker id → emoji, from every ``emoji_mapping.txt`` and then the samples' ``sticker_alt`` (which win
    only where the mapping has nothing): the id→alt mapping :mod:`training.metrics` wants."""
    out: dict[str, str] = {}
    for mapping in index.emoji.values():
        out.update(mapping)
    for s in samples:
        if s.current.alt and s.current.sticker_id not in out:
            out[s.current.sticker_id] = s.current.alt
    return out


@dataclass
class StickerDataset:
    """A dataset folder: its sticker index, and its splits loaded on demand."""

    root: Path
    index: StickerIndex

    @classmethod
    def open(cls, root: Path | str) -> StickerDataset:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"dataset folder {root} does not exist")
        return cls(root=root, index=StickerIndex.scan(root))

    def splits(self) -> list[str]:
        return available_splits(self.root)

    def load(self, split: str) -> list[Sample]:
        return load_split(self.root, split)

    def candidates(self, sample: Sample, seed: int = CANDIDATE_SEED) -> list[str]:
        return candidates_for(sample, self.index, seed)


def load_sticker_image(path: Path | str) -> Image.Image:
    """A sticker file → PIL image: ``.npy`` (HxWx3 uint8, StickerChat's form; HxW and HxWx4 accepted) as RGB
    or RGBA, anything else through the engine's bounded decoder (an RGBA still).

    Why ``.npy`` is not read by the engine's decoder (``engine.library``'s pack import): the engine guards
    serving against untrusted packs and accepts only HxWx3/HxWx4 uint8 arrays within its pixel limit, as RGBA;
    training reads the public corpora offline, which also hold grey (HxW) and float arrays, and its caches and
    tests are keyed on the RGB image of an HxWx3 array. Both give the same pixels for an HxWx3 uint8 array.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return _npy_image(path)
    from engine.media import decode_sticker

    return decode_sticker(path.read_bytes()).image


def _npy_image(path: Path) -> Image.Image:
    arr = np.load(path, allow_pickle=False)
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(arr.max()) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return Image.fromarray(arr).convert("RGB")
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise DatasetError(f"{path}: expected an HxWx3 array, got shape {arr.shape}")
    return Image.fromarray(np.ascontiguousarray(arr))  # uint8 HxWx3 → RGB, HxWx4 → RGBA
