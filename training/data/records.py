"""The records of the dataset format (``docs/FORMAT.md``): a sample's turns, the sticker sent, the sample
itself, and how ids read and write. Ids may be JSON numbers or strings in the files; here they are always
``str`` (compare them as strings). Message and user ids that are plain integers are written as numbers,
every other id as a string."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
