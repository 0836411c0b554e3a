"""`stickerpick data export`: the logged samples of opted-in chats as a dataset in the format of docs/FORMAT.md.

- Only chats whose logging is on *now*; users who ran ``/forget`` no longer exist in the database, and their
  turns were removed from other samples' contexts (``engine.samples``), so nothing of theirs comes out.
- User and chat ids become salted hashes (HMAC-SHA256, 16 hex digits); the salt is never written out.
- Sticker images come from the engine's media store: set id ``p<pack id>``, sticker id the database id.
- Train/val split by time: the newest ``val_fraction`` of the samples (ties at the boundary go to val as a
  whole), so every val sample is strictly later than every train sample.
- Each sample lists explicit candidates: the positive plus up to 9 other stickers the chat could choose from
  (its enabled packs at export time), a seeded draw; a chat with fewer stickers gives all of them.
- Beside each split, ``release_<split>.meta.json`` (one line per sample, same order): the hashed chat, the
  time and the kind (sent | picked), which the usage-prior evaluation reads. ``export.json`` describes it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import random
import secrets
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.samples import LoggedSample
from training.data.format import CurrentSticker, Sample, StickerEntry, Turn, write_dataset

CANDIDATES = 10
# Written into every export: `--overwrite` replaces only a folder that carries it, so a mistyped path can
# never replace a folder of someone's other data.
MARKER = ".stickerpick-export"
MARKER_TEXT = "a dataset written by `stickerpick data export`; --overwrite may replace this folder\n"


class ExportRefused(ValueError):
    """The output folder may not be written or replaced (it is not a previous export, or holds live data)."""


def check_target(out_dir: Path, overwrite: bool, protected: Sequence[Path] = ()) -> None:
    """Refuse an export folder that is, or contains, one of ``protected`` (the home, the media store, the
    database), and with ``overwrite`` any existing folder that is not a previous export (no :data:`MARKER`)."""
    target = Path(out_dir).resolve()
    for p in protected:
        p = Path(p).resolve()
        if target == p or target in p.parents:
            raise ExportRefused(f"{out_dir} is or contains {p}, which holds live data; choose another folder")
    if not target.exists() and not target.is_symlink():
        return
    if not overwrite:
        raise ExportRefused(f"{out_dir} exists; pass --overwrite to replace a previous export")
    if not target.is_dir() or Path(out_dir).is_symlink() or not (target / MARKER).is_file():
        raise ExportRefused(
            f"{out_dir} is not a previous export (it has no {MARKER} file): --overwrite replaces only "
            "those; choose a new folder"
        )


def pseudonym(key: str, salt: bytes) -> str:
    return hmac.new(salt, key.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def split_by_time(
    samples: Sequence[LoggedSample], val_fraction: float
) -> tuple[list[LoggedSample], list[LoggedSample]]:
    ordered = sorted(samples, key=lambda s: (s.created_at, s.id))
    if len(ordered) < 2:
        return ordered, []
    n_val = max(1, math.ceil(len(ordered) * val_fraction))
    boundary = ordered[len(ordered) - n_val].created_at
    train = [s for s in ordered if s.created_at < boundary]
    val = [s for s in ordered if s.created_at >= boundary]
    return train, val


def _candidates(s: LoggedSample) -> list[int] | None:
    others = sorted(set(s.chat_sticker_ids) - {s.sticker_id})
    if not others:
        return None
    rng = random.Random(s.id * 7919 + 17)
    chosen = [*rng.sample(others, min(CANDIDATES - 1, len(others))), s.sticker_id]
    rng.shuffle(chosen)
    return chosen


def _speaker(s: LoggedSample, user_id: object, key: bytes) -> str | None:
    """A context turn's speaker (a users.id), pseudonymised; None for an unknown one."""
    return (
        pseudonym(s.user_keys[user_id], key) if isinstance(user_id, int) and user_id in s.user_keys else None
    )


def _describe(
    samples: Sequence[LoggedSample],
    train: Sequence[LoggedSample],
    val: Sequence[LoggedSample],
    stickers: int,
    val_fraction: float,
    random_salt: bool,
) -> dict[str, Any]:
    """What export.json says about an export."""
    last_train: datetime | None = max((s.created_at for s in train), default=None)
    first_val: datetime | None = min((s.created_at for s in val), default=None)
    return {
        "samples": {"train": len(train), "val": len(val)},
        "chats": len({s.chat_key for s in samples}),
        "stickers": stickers,
        "kinds": {k: sum(1 for s in samples if s.kind == k) for k in sorted({s.kind for s in samples})},
        "split": {"val_fraction": val_fraction, "last_train": last_train, "first_val": first_val},
        "pseudonyms": "HMAC-SHA256(salt, 'platform:id')[:16]; salt not written"
        + (" (random salt for this export)" if random_salt else ""),
    }


def export_logs(
    samples: Sequence[LoggedSample],
    stickers: dict[int, tuple[int, str | None, str]],
    media_path: Any,
    out_dir: Path,
    salt: bytes | None = None,
    val_fraction: float = 0.2,
    overwrite: bool = False,
    protected: Sequence[Path] = (),
) -> dict[str, Any]:
    """Write the dataset; ``stickers``: id → (pack id, emoji, sha) for every positive and candidate;
    ``media_path``: sha → the PNG in the media store. Returns the description written to export.json."""
    check_target(out_dir, overwrite, protected)
    random_salt = salt is None
    key = salt if salt is not None else secrets.token_bytes(32)
    train, val = split_by_time(samples, val_fraction)
    used: set[int] = set()

    def convert(s: LoggedSample) -> tuple[Sample, dict[str, Any]]:
        pack_id, emoji, _ = stickers[s.sticker_id]
        turns = tuple(
            Turn(text=str(t["text"]), id=str(t["id"]), from_id=_speaker(s, t.get("from"), key))
            for t in s.context
        )
        cands = _candidates(s)
        cands = [c for c in cands if c in stickers] if cands else None
        used.add(s.sticker_id)
        used.update(cands or ())
        sample = Sample(
            context=turns,
            current=CurrentSticker(
                set_id=f"p{pack_id}",
                sticker_id=str(s.sticker_id),
                alt=emoji,
                from_id=pseudonym(s.user_key, key) if s.user_key else None,
            ),
            candidates=tuple(str(c) for c in cands) if cands else None,
        )
        meta = {"chat": pseudonym(s.chat_key, key), "at": s.created_at.isoformat(), "kind": s.kind}
        return sample, meta

    splits: dict[str, list[Sample]] = {}
    metas: dict[str, list[dict[str, Any]]] = {}
    for name, part in (("train", train), ("val", val)):
        pairs = [convert(s) for s in part]
        splits[name] = [p[0] for p in pairs]
        metas[name] = [p[1] for p in pairs]
    # candidates of a set's default draw must exist too: every sticker of the packs the samples use
    entries = [
        StickerEntry(f"p{stickers[i][0]}", str(i), Path(media_path(stickers[i][2])), stickers[i][1])
        for i in sorted(used)
    ]
    info = _describe(samples, train, val, len(entries), val_fraction, random_salt)
    extra = {
        f"release_{name}.meta.json": "".join(json.dumps(m) + "\n" for m in metas[name]) for name in metas
    }
    extra["export.json"] = json.dumps(info, indent=2, default=str) + "\n"
    extra[MARKER] = MARKER_TEXT
    write_dataset(out_dir, splits, entries, extra_files=extra, overwrite=overwrite)
    return info


async def export_from_service(
    service: Any,
    out_dir: Path,
    since: datetime | None = None,
    chats: Sequence[str] = (),
    salt: bytes | None = None,
    val_fraction: float = 0.2,
    overwrite: bool = False,
) -> dict[str, Any]:
    settings = service.settings
    protected = [settings.home, settings.media_dir]
    if service.database_file is not None:
        protected.append(service.database_file)
    check_target(out_dir, overwrite, protected)  # before reading anything
    samples = await service.logged_samples(since=since, chats=chats)
    ids = sorted({i for s in samples for i in (s.sticker_id, *s.chat_sticker_ids)})
    stickers = await service.sticker_rows(ids)
    return export_logs(
        samples,
        stickers,
        service.store.path,
        out_dir,
        salt=salt,
        val_fraction=val_fraction,
        overwrite=overwrite,
        protected=protected,
    )


def read_meta(root: Path, split: str) -> list[dict[str, Any]]:
    path = Path(root) / f"release_{split}.meta.json"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
