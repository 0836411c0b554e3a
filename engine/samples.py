"""Logged retraining samples: capture, privacy, the per-chat usage prior, and the rows an export reads.

A sample is one row of ``training_samples``: the sticker a user sent (or picked after ``/sticker``) in a chat
whose logging is on, with the dialogue before it snapshotted at capture time. The rules:
- captured only while ``chats.logging_enabled`` is on, and only for a sticker of the chat's own packs;
- the dialogue history's retention never deletes samples (they are what retraining needs);
- ``/logging off`` deletes the chat's samples; ``/forget`` deletes the user's samples and removes the user's
  turns from every other sample's context;
- user ids stay database ids here; an export replaces them with salted hashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import Chat, ChatPack, Pack, Sticker, TrainingSample, User, rowcount
from engine.history import HistoryTurn

SENT, PICKED = "sent", "picked"


def snapshot(turns: Sequence[HistoryTurn]) -> list[dict[str, object]]:
    return [{"id": t.message_id, "from": t.from_id, "text": t.text} for t in turns]


async def find_chat_sticker(
    session: AsyncSession, pack_chat_id: int, sticker: str | int, platform: str | None = None
) -> Sticker | None:
    """A sticker of one of the chat's enabled packs, by database id (int) or platform sticker id (str)."""
    q = (
        select(Sticker)
        .join(ChatPack, ChatPack.pack_id == Sticker.pack_id)
        .join(Pack, Pack.id == Sticker.pack_id)
        .where(ChatPack.chat_id == pack_chat_id, ChatPack.enabled)
    )
    if isinstance(sticker, int):
        q = q.where(Sticker.id == sticker)
    else:
        q = q.where(Sticker.platform_sticker_id == str(sticker))
        if platform is not None:
            q = q.order_by((Pack.platform == platform).desc())
    return (await session.execute(q.limit(1))).scalars().first()


async def forget_user(session: AsyncSession, user_id: int) -> int:
    """Delete the user's samples and drop the user's turns from every other sample of their platform."""
    n = rowcount(await session.execute(delete(TrainingSample).where(TrainingSample.user_id == user_id)))
    platform = (await session.execute(select(User.platform).where(User.id == user_id))).scalar_one_or_none()
    q = select(TrainingSample).join(Chat, Chat.id == TrainingSample.chat_id)
    if platform is not None:
        q = q.where(Chat.platform == platform)
    for sample in (await session.execute(q)).scalars():
        kept = [t for t in sample.context or [] if t.get("from") != user_id]
        if len(kept) != len(sample.context or []):
            sample.context = kept
    return int(n)


async def usage_counts(session: AsyncSession, chat_id: int) -> dict[int, int]:
    rows = await session.execute(
        select(TrainingSample.sticker_id, func.count())
        .where(TrainingSample.chat_id == chat_id)
        .group_by(TrainingSample.sticker_id)
    )
    return {int(sid): int(n) for sid, n in rows}


def usage_prior(ids: np.ndarray, counts: dict[int, int]) -> np.ndarray:
    """log1p(count) / log1p(max count) per sticker id, in [0, 1]; zeros where the chat logged nothing."""
    prior = np.zeros(len(ids), dtype=np.float32)
    if not counts:
        return prior
    top = np.log1p(max(counts.values()))
    for i, sid in enumerate(ids.tolist()):
        n = counts.get(int(sid))
        if n:
            prior[i] = np.log1p(n) / top
    return prior


@dataclass(frozen=True)
class LoggedSample:
    """One sample as an export reads it (still with database ids; the exporter pseudonymises)."""

    id: int
    chat_key: str  # "<platform>:<platform chat id>"
    user_key: str | None  # "<platform>:<platform user id>"
    kind: str
    sticker_id: int
    pack_id: int
    emoji: str | None
    media_sha256: str
    context: list[dict[str, object]]
    user_keys: dict[int, str]  # users.id of the context's speakers → "<platform>:<platform user id>"
    chat_sticker_ids: list[int]  # the stickers the chat could choose from (its enabled packs), for candidates
    created_at: datetime


async def logged_samples(
    session: AsyncSession, since: datetime | None = None, chats: Sequence[str] = ()
) -> list[LoggedSample]:
    """Every sample of chats whose logging is on *now*, oldest first; ``chats``: "platform:chat_id" or a
    bare chat id to keep. Users that were forgotten no longer exist, so nothing of theirs can come out."""
    q = (
        select(TrainingSample, Chat, Sticker)
        .join(Chat, Chat.id == TrainingSample.chat_id)
        .join(Sticker, Sticker.id == TrainingSample.sticker_id)
        .where(Chat.logging_enabled.is_(True))
        .order_by(TrainingSample.created_at, TrainingSample.id)
    )
    if since is not None:
        q = q.where(TrainingSample.created_at >= since)
    rows = (await session.execute(q)).all()
    wanted = set(chats)
    if wanted:
        rows = [
            r
            for r in rows
            if f"{r[1].platform}:{r[1].platform_chat_id}" in wanted or r[1].platform_chat_id in wanted
        ]
    users = await _user_keys(session, [r[0] for r in rows])
    chat_stickers: dict[int, list[int]] = {}
    out: list[LoggedSample] = []
    for sample, chat, sticker in rows:
        if chat.id not in chat_stickers:
            chat_stickers[chat.id] = await _enabled_sticker_ids(session, chat.id)
        context = [t for t in sample.context or [] if t.get("from") is None or t.get("from") in users]
        out.append(
            LoggedSample(
                id=sample.id,
                chat_key=f"{chat.platform}:{chat.platform_chat_id}",
                user_key=users.get(sample.user_id) if sample.user_id is not None else None,
                kind=sample.kind,
                sticker_id=sticker.id,
                pack_id=sticker.pack_id,
                emoji=sticker.emoji,
                media_sha256=sticker.media_sha256,
                context=context,
                user_keys={u: users[u] for u in {t.get("from") for t in context} if u in users},
                chat_sticker_ids=chat_stickers[chat.id] or [sticker.id],
                created_at=sample.created_at,
            )
        )
    return out


async def _user_keys(session: AsyncSession, samples: Sequence[TrainingSample]) -> dict[int, str]:
    """users.id → "<platform>:<platform user id>" for the samples' users and their contexts' speakers."""
    user_ids = {s.user_id for s in samples if s.user_id is not None}
    for s in samples:
        user_ids |= {t["from"] for t in s.context or [] if t.get("from") is not None}
    users: dict[int, str] = {}
    if user_ids:
        for uid, platform, puid in await session.execute(
            select(User.id, User.platform, User.platform_user_id).where(User.id.in_(list(user_ids)))
        ):
            users[int(uid)] = f"{platform}:{puid}"
    return users


async def _enabled_sticker_ids(session: AsyncSession, chat_id: int) -> list[int]:
    """The stickers of the chat's enabled packs, by id."""
    rows = await session.execute(
        select(Sticker.id)
        .join(ChatPack, ChatPack.pack_id == Sticker.pack_id)
        .where(ChatPack.chat_id == chat_id, ChatPack.enabled)
        .order_by(Sticker.id)
    )
    return list(rows.scalars())


async def sticker_rows(session: AsyncSession, ids: Sequence[int]) -> dict[int, tuple[int, str | None, str]]:
    """sticker id → (pack id, emoji, media sha256), for an export's candidates."""
    out: dict[int, tuple[int, str | None, str]] = {}
    for start in range(0, len(ids), 900):
        chunk = list(ids[start : start + 900])
        rows = await session.execute(
            select(Sticker.id, Sticker.pack_id, Sticker.emoji, Sticker.media_sha256).where(
                Sticker.id.in_(chunk)
            )
        )
        for sid, pid, emoji, sha in rows:
            out[int(sid)] = (int(pid), emoji, sha)
    return out
