"""Suggestions as the database keeps them: written once per /sticker answer, read back by any worker that
handles its buttons."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.db import Chat, Feedback, OneShot, Pack, Sticker, Suggestion, SuggestionItem, User, utcnow
from engine.ingest import MicroBatcher
from engine.service._types import ChatRef, StoredSuggestion, SuggestedSticker, UserRef
from engine.store import MediaStore

log = logging.getLogger(__name__)

# What an adapter needs to show or send a suggested sticker (one row per sticker, with its pack's name).
SHOWN_COLUMNS = (
    Sticker.id,
    Pack.name,
    Sticker.platform_sticker_id,
    Sticker.platform_file_id,
    Sticker.emoji,
    Sticker.media_sha256,
)


_DETAILS = select(*SHOWN_COLUMNS).join(Pack).where(Sticker.id.in_(bindparam("ids", expanding=True)))
_INSERT_HEAD = insert(Suggestion).returning(Suggestion.id)
_INSERT_ITEMS = insert(SuggestionItem)

# A suggestion's id and its items as adapters show them.
Saved = tuple[int, list[SuggestedSticker]]
# A statement run first in the suggestion's transaction; False: write nothing (e.g. the cooldown slot was taken).
Claim = Callable[[Connection], bool]


@dataclass(frozen=True)
class PendingSuggestion:
    head: dict[str, Any]
    chosen: tuple[tuple[int, float], ...]
    claim: Claim | None


class Suggestions:
    """``db`` runs each batch of writes in one go (:class:`engine.db.OneShot`); ``max_batch=1`` is one
    transaction per suggestion (the benchmark's baseline)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        store: MediaStore,
        db: OneShot | None = None,
        max_batch: int = 64,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.db = db or OneShot(sessions.kw["bind"])
        self._batcher: MicroBatcher[PendingSuggestion, Saved | None] = MicroBatcher(
            self._commit_batch, max_batch, "stickerpick-suggestion-writer"
        )

    async def close(self) -> None:
        """On shutdown: every suggestion submitted so far is committed, then the connections are closed."""
        await self._batcher.flush()
        self.db.close()

    def shown(self, rank: int, score: float, row: Any) -> SuggestedSticker:
        """A suggested sticker from a row of ``SHOWN_COLUMNS``."""
        return SuggestedSticker(
            rank,
            row.id,
            row.name,
            row.platform_sticker_id,
            row.platform_file_id,
            row.emoji,
            score,
            self.store.path(row.media_sha256),
        )

    async def save(
        self, head: dict[str, Any], chosen: Sequence[tuple[int, float]], claim: Claim | None = None
    ) -> Saved | None:
        """Write one suggestion (``head``: its ``Suggestion`` columns but the time) and its items (sticker id,
        score) in rank order, committed before this returns, so any worker can read it back for its buttons;
        returns its id and the items as adapters show them. ``claim`` (a statement of the same transaction,
        e.g. the chat's cooldown slot) runs first: when it returns False nothing is written and this returns
        None. Group-committed: every save that arrives while a commit is in flight shares the next one."""
        return await self._batcher.submit(PendingSuggestion(dict(head), tuple(chosen), claim))

    def save_here(
        self, head: dict[str, Any], chosen: Sequence[tuple[int, float]], claim: Claim | None = None
    ) -> Saved | None:
        """:meth:`save` run in the calling worker thread, in a transaction of its own, where ``db.threaded``
        (a SQLite file): for a request whose model ran in this thread, so its write needs no second hop."""
        return self.db.write_here(self._write_all, [PendingSuggestion(dict(head), tuple(chosen), claim)])[0]

    async def _commit_batch(self, batch: list[PendingSuggestion]) -> list[Saved | Exception | None]:
        try:
            return list(await self.db.write(self._write_all, batch))
        except DBAPIError as exc:
            if len(batch) == 1:
                return [exc]
            log.warning(
                "a batch of %d suggestions was refused (%s); retrying one by one",
                len(batch),
                type(exc.orig).__name__,
            )
            outcomes: list[Saved | Exception | None] = []
            for p in batch:
                try:
                    outcomes.extend(await self.db.write(self._write_all, [p]))
                except Exception as one:  # handed to its caller
                    outcomes.append(one)
            return outcomes

    def _write_all(self, conn: Connection, batch: list[PendingSuggestion]) -> list[Saved | None]:
        """One transaction: each suggestion's claim, then its row and its items (prebuilt Core statements:
        building a statement per call cost more than running it)."""
        ids = sorted({sid for p in batch for sid, _ in p.chosen})
        # read before the first write: SQLite's write lock is held only for the writes
        details = {row.id: row for row in conn.execute(_DETAILS, {"ids": ids})}
        out: list[Saved | None] = []
        for p in batch:
            if p.claim is not None and not p.claim(conn):
                out.append(None)
                continue
            suggestion_id = conn.execute(_INSERT_HEAD, {**p.head, "created_at": utcnow()}).scalar_one()
            items = [self.shown(rank, score, details[sid]) for rank, (sid, score) in enumerate(p.chosen)]
            conn.execute(
                _INSERT_ITEMS,
                [
                    {
                        "suggestion_id": suggestion_id,
                        "rank": i.rank,
                        "sticker_id": i.sticker_id,
                        "score": i.score,
                    }
                    for i in items
                ],
            )
            out.append((suggestion_id, items))
        return out

    async def stored(
        self, suggestion_id: int, chat: ChatRef, max_age_s: float | None = None
    ) -> StoredSuggestion | None:
        """A suggestion made in ``chat`` (by any worker sharing the database), with its items in rank order
        and the ranks already picked. None when it is another chat's, older than ``max_age_s``, or one of its
        stickers was deleted since."""
        async with self.sessions() as session:
            head = (
                await session.execute(
                    select(Suggestion.created_at, User.platform, User.platform_user_id, User.display_name)
                    .join(Chat, Chat.id == Suggestion.chat_id)
                    .outerjoin(User, User.id == Suggestion.requested_by)
                    .where(
                        Suggestion.id == suggestion_id,
                        Chat.platform == chat.platform,
                        Chat.platform_chat_id == str(chat.chat_id),
                    )
                )
            ).first()
            if head is None:
                return None
            created = head.created_at if head.created_at.tzinfo else head.created_at.replace(tzinfo=UTC)
            if max_age_s is not None and (utcnow() - created).total_seconds() > max_age_s:
                return None
            rows = (
                await session.execute(
                    select(SuggestionItem.rank, SuggestionItem.score, *SHOWN_COLUMNS)
                    .join(Sticker, Sticker.id == SuggestionItem.sticker_id)
                    .join(Pack, Pack.id == Sticker.pack_id)
                    .where(SuggestionItem.suggestion_id == suggestion_id)
                    .order_by(SuggestionItem.rank)
                )
            ).all()
            picked_ids = set(
                (
                    await session.execute(
                        select(Feedback.sticker_id).where(
                            Feedback.suggestion_id == suggestion_id, Feedback.kind == "picked"
                        )
                    )
                ).scalars()
            )
        items = [self.shown(r.rank, r.score, r) for r in rows]
        if not items or [i.rank for i in items] != list(range(len(items))):
            return None
        requester = (
            UserRef(head.platform, head.platform_user_id, head.display_name)
            if head.platform_user_id
            else None
        )
        return StoredSuggestion(
            suggestion_id, requester, created, items, {i.rank for i in items if i.sticker_id in picked_ids}
        )
