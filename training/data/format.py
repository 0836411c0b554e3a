"""Reader and writer of the one dataset format (``docs/FORMAT.md``, the StickerChat layout).

```
DATASET/
  release_{train,val,test}.json                  JSON Lines, one sample a line; any may be absent
  npy_stickers/<set_id>/<sticker_id>.npy|.png|…  HxWx3 uint8 array, or any image
  npy_stickers/<set_id>/emoji_mapping.txt        optional "<sticker_id>\\t<emoji>" lines
```

Ids may be JSON numbers or strings in the files; here they are always ``str`` (compare them as strings). The
writer writes message and user ids that are plain integers as numbers, every other id as a string. Where a sample has no ``candidates``, :func:`default_candidates` draws StickerChat's:
the positive plus 9 other stickers of its set, with a fixed seed, the same for a sample wherever it is read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SPLITS = ("train", "val", "test")
STICKER_DIR = "npy_stickers"
EMOJI_MAPPING = "emoji_mapping.txt"
# Files a sticker may be stored as; when one id has several, the first suffix here wins.
STICKER_SUFFIXES = (".npy", ".png", ".webp", ".jpg", ".jpeg", ".gif", ".apng", ".bmp", ".tgs", ".webm")
NUM_CANDIDATES = 10  # StickerChat's protocol: R10@k
CANDIDATE_SEED = 0


class DatasetError(ValueError):
    """A dataset file does not follow docs/FORMAT.md; the message names the file and line."""


def split_file(root: Path | str, split: str) -> Path:
    return Path(root) / f"release_{split}.json"


def _candidate_id(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        raise DatasetError(f"candidate {value!r} is not a sticker id")
    return str(_id(value))


def _id(value: Any) -> str | None:
    """A JSON id (number or string, maybe null) → str or None. ``1.0`` is not an id we expect: kept as given."""
    if value is None:
        return None
    if isinstance(value, bool):  # bool is an int subclass; an id of true/false is a mistake
        raise DatasetError(f"id {value!r} is a boolean")
    return str(value)


_INT_ID = re.compile(r"-?(0|[1-9][0-9]{0,17})")


def _json_id(value: str | None) -> str | int | None:
    """Message and user ids go out as JSON numbers where the string is a plain integer (StickerChat's form;
    reading gives back the same string), else as strings. Sticker and set ids always go out as strings."""
    if value is not None and _INT_ID.fullmatch(value):
        return int(value)
    return value


# --------------------------------------------------------------------------------------------- samples
@dataclass(frozen=True)
class Turn:
    """One message of the context. ``reply_to`` is the id of the message it replies to, if any."""

    text: str
    id: str | None = None
    from_id: str | None = None
    reply_to: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "id": _json_id(self.id),
            "from_id": _json_id(self.from_id),
            "reply_to_msg_id": _json_id(self.reply_to),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Turn:
        text = d.get("text")
        return cls(
            text="" if text is None else str(text),
            id=_id(d.get("id")),
            from_id=_id(d.get("from_id")),
            reply_to=_id(d.get("reply_to_msg_id")),
        )


@dataclass(frozen=True)
class CurrentSticker:
    """The sticker that was sent: which set, which sticker, its emoji (``alt``), who sent it."""

    set_id: str
    sticker_id: str
    alt: str | None = None
    from_id: str | None = None
    reply_to: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "from_id": _json_id(self.from_id),
            "reply_to_msg_id": _json_id(self.reply_to),
            "sticker_set_id": self.set_id,
            "sticker_id": self.sticker_id,
            "sticker_alt": self.alt,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CurrentSticker:
        sticker_id, set_id = _id(d.get("sticker_id")), _id(d.get("sticker_set_id"))
        if sticker_id is None or set_id is None:
            raise DatasetError("current needs sticker_set_id and sticker_id")
        alt = d.get("sticker_alt")
        return cls(
            set_id=set_id,
            sticker_id=sticker_id,
            alt=None if alt in (None, "") else str(alt),
            from_id=_id(d.get("from_id")),
            reply_to=_id(d.get("reply_to_msg_id")),
        )


@dataclass(frozen=True)
class Sample:
    """One line of a split: the dialogue so far (oldest first), the sticker sent, optionally the candidates."""

    context: tuple[Turn, ...]
    current: CurrentSticker
    candidates: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # Accept lists from callers; store tuples so a sample is hashable and cannot change under a reader.
        object.__setattr__(self, "context", tuple(self.context))
        if self.candidates is not None:
            object.__setattr__(self, "candidates", tuple(str(c) for c in self.candidates))

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "context": [t.to_json() for t in self.context],
            "current": self.current.to_json(),
        }
        if self.candidates is not None:
            d["candidates"] = list(self.candidates)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Sample:
        if not isinstance(d, Mapping):
            raise DatasetError("a sample must be a JSON object")
        context = d.get("context") or []
        current = d.get("current")
        if not isinstance(context, list) or not all(isinstance(t, Mapping) for t in context):
            raise DatasetError("context must be a list of objects")
        if not isinstance(current, Mapping):
            raise DatasetError("current must be an object")
        cands = d.get("candidates")
        if cands is not None and not isinstance(cands, list):
            raise DatasetError("candidates must be a list of sticker ids")
        return cls(
            context=tuple(Turn.from_json(t) for t in context),
            current=CurrentSticker.from_json(current),
            candidates=None if cands is None else tuple(_candidate_id(c) for c in cands),
        )

    def key(self) -> str:
        """A stable digest of the sample's content: what seeds its default candidates."""
        parts = [self.current.set_id, self.current.sticker_id, self.current.from_id or ""]
        for t in self.context:
            parts += [t.id or "", t.from_id or "", t.text]
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


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


# --------------------------------------------------------------------------------------------- stickers
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
    or RGBA, anything else through the engine's bounded decoder (an RGBA still)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
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
    data = path.read_bytes()
    try:
        from engine.media import decode_sticker
    except ImportError:  # engine.media is being written; until it lands, Pillow's first frame
        # TODO(engine.media): drop this fallback once engine.media.decode_sticker is everywhere.
        with Image.open(io.BytesIO(data)) as im:
            im.seek(0)
            return im.convert("RGBA")
    return decode_sticker(data).image


# --------------------------------------------------------------------------------------------- writing
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
    """Write one ``release_<split>.json`` (temp file, then rename); returns the number of samples."""
    path = split_file(root, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for s in samples:
                f.write(_dump_line(s))
                f.write("\n")
                n += 1
        os.chmod(tmp, _default_mode(0o666))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        os.chmod(tmp, _default_mode(0o777))
        counts = {name: write_split(tmp, name, samples) for name, samples in splits.items()}
        mappings: dict[str, dict[str, str]] = {}
        seen: set[tuple[str, str]] = set()
        for entry in stickers:
            key = (str(entry.set_id), str(entry.sticker_id))
            if key in seen:
                raise DatasetError(f"sticker {key[1]!r} of set {key[0]!r} is given twice")
            seen.add(key)
            set_dir = tmp / STICKER_DIR / key[0]
            set_dir.mkdir(parents=True, exist_ok=True)
            _write_sticker(set_dir, entry)
            mappings.setdefault(key[0], {})
            if entry.emoji:
                mappings[key[0]][key[1]] = entry.emoji
        for set_id, mapping in mappings.items():
            if mapping:
                lines = "".join(f"{sid}\t{e}\n" for sid, e in mapping.items())
                (tmp / STICKER_DIR / set_id / EMOJI_MAPPING).write_text(lines, encoding="utf-8")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        replace_dir(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts


def replace_dir(staged: Path, target: Path) -> None:
    """Move a fully written ``staged`` folder into place as ``target`` (replacing any old one) by renames."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(staged, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, target)
