"""Writing a dataset folder: each split atomically, and a whole dataset staged beside its target and renamed
into place, so a reader never sees half of either."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from engine.fsutil import atomic_open
from training.data.records import (
    EMOJI_MAPPING,
    SPLITS,
    STICKER_DIR,
    STICKER_SUFFIXES,
    DatasetError,
    Sample,
    split_file,
)


@dataclass(frozen=True)
class StickerEntry:
    """A sticker to write: ``source`` is a file to copy (keeps its suffix), an image (saved as PNG) or an
    HxWx3 uint8 array (saved as ``.npy``)."""

    set_id: str
    sticker_id: str
    source: Path | Image.Image | np.ndarray
    emoji: str | None = None


def _default_mode(mode: int) -> int:
    """``mode`` less the process umask: what a plain ``open``/``mkdir`` would have given (mkstemp gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def _dump_line(sample: Sample) -> str:
    return json.dumps(sample.to_json(), ensure_ascii=False, separators=(",", ":"))


def write_split(root: Path | str, split: str, samples: Iterable[Sample]) -> int:
    """Write one ``release_<split>.json`` atomically; returns the number of samples."""
    n = 0
    with atomic_open(split_file(root, split), "w", encoding="utf-8", newline="\n") as f:
        os.fchmod(f.fileno(), _default_mode(0o666))  # the temp file is 0600; the split is an ordinary file
        for s in samples:
            f.write(_dump_line(s))
            f.write("\n")
            n += 1
    return n


def _write_sticker(set_dir: Path, entry: StickerEntry) -> None:
    src = entry.source
    if isinstance(src, np.ndarray):
        if src.dtype != np.uint8 or src.ndim != 3 or src.shape[2] != 3:
            raise DatasetError(
                f"sticker {entry.sticker_id}: arrays must be HxWx3 uint8, not {src.dtype} {src.shape}"
            )
        np.save(set_dir / f"{entry.sticker_id}.npy", src, allow_pickle=False)
    elif isinstance(src, Image.Image):
        src.save(set_dir / f"{entry.sticker_id}.png", format="PNG")
    else:
        src = Path(src)
        suffix = src.suffix.lower()
        if suffix not in STICKER_SUFFIXES:
            raise DatasetError(
                f"sticker {entry.sticker_id}: {src.name} is not one of {', '.join(STICKER_SUFFIXES)}"
            )
        shutil.copyfile(src, set_dir / f"{entry.sticker_id}{suffix}")


def write_dataset(
    root: Path | str,
    splits: Mapping[str, Iterable[Sample]],
    stickers: Iterable[StickerEntry] = (),
    *,
    extra_files: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> dict[str, int]:
    """Write a whole dataset folder: the splits, the sticker files, each set's ``emoji_mapping.txt`` and any
    ``extra_files`` (name → text, e.g. a provenance note).

    Everything is written into a temporary sibling folder that is renamed into place at the end, so a reader
    never sees half a dataset; an existing ``root`` is replaced only with ``overwrite``. Returns
    {split: number of samples}.
    """
    root = Path(root)
    for name in splits:
        if name not in SPLITS:
            raise ValueError(f"split {name!r} is not one of {SPLITS}")
    if root.exists() and not overwrite:
        raise FileExistsError(f"{root} exists; pass overwrite=True to replace it")
    with staged_dir(root, _default_mode(0o777)) as tmp:
        counts = {name: write_split(tmp, name, samples) for name, samples in splits.items()}
        _write_stickers(tmp, stickers)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
    return counts


def _write_stickers(root: Path, stickers: Iterable[StickerEntry]) -> None:
    """The sticker files under ``root/npy_stickers/<set>/`` and each set's ``emoji_mapping.txt``."""
    mappings: dict[str, dict[str, str]] = {}
    seen: set[tuple[str, str]] = set()
    for entry in stickers:
        key = (str(entry.set_id), str(entry.sticker_id))
        if key in seen:
            raise DatasetError(f"sticker {key[1]!r} of set {key[0]!r} is given twice")
        seen.add(key)
        set_dir = root / STICKER_DIR / key[0]
        set_dir.mkdir(parents=True, exist_ok=True)
        _write_sticker(set_dir, entry)
        mappings.setdefault(key[0], {})
        if entry.emoji:
            mappings[key[0]][key[1]] = entry.emoji
    for set_id, mapping in mappings.items():
        if mapping:
            lines = "".join(f"{sid}\t{e}\n" for sid, e in mapping.items())
            (root / STICKER_DIR / set_id / EMOJI_MAPPING).write_text(lines, encoding="utf-8")


@contextmanager
def staged_dir(target: Path, mode: int) -> Iterator[Path]:
    """A new folder beside ``target`` (permissions ``mode``) to write a whole tree into: on a clean exit it
    replaces ``target`` (:func:`replace_dir`), on an error it is removed and ``target`` is untouched. A file
    is made atomic by one rename (``engine.fsutil.atomic_open``); a folder of files needs this."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        os.chmod(tmp, mode)
        yield tmp
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(staged: Path, target: Path) -> None:
    """Move a fully written ``staged`` folder into place as ``target`` (replacing any old one) by renames."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(staged, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, target)
