"""Suggestions as the database keeps them: written once per /sticker answer, read back by any worker that
handles its buttons."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.db import Chat, Feedback, Pack, Sticker, Suggestion, SuggestionItem, User, utcnow
from engine.service._types import ChatRef, StoredSuggestion, SuggestedSticker, UserRef
from engine.store import MediaStore

# What an adapter needs to show or send a suggested sticker (one row per sticker, with its pack's name).
SHOWN_COLUMNS = (
    Sticker.id,
    Pack.name,
    Sticker.platform_sticker_id,
    Sticker.platform_file_id,
    Sticker.emoji,
    Sticker.media_sha256,
)


class Suggestions:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], store: MediaStore) -> None:
        self.sessions = sessions
        self.store = store

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
        self,
        session: AsyncSession,
        head: dict[str, Any],
        chosen: Sequence[tuple[int, float]],
    ) -> tuple[int, list[SuggestedSticker]]:
        """Write one suggestion (``head``: its ``Suggestion`` columns but the time) and its items (sticker id,
        score) in rank order; returns its id and the items as adapters show them. Core statements, not the
        ORM unit of work: a third of the request's Python time went to flushes."""
        suggestion_id = (
            await session.execute(
                insert(Suggestion).values(**head, created_at=utcnow()).returning(Suggestion.id)
            )
        ).scalar_one()
        ids = [sid for sid, _ in chosen]
        rows = await session.execute(select(*SHOWN_COLUMNS).join(Pack).where(Sticker.id.in_(ids)))
        details = {row.id: row for row in rows.all()}
        items = [self.shown(rank, score, details[sid]) for rank, (sid, score) in enumerate(chosen)]
        await session.execute(
            insert(SuggestionItem),
            [
                {"suggestion_id": suggestion_id, "rank": i.rank, "sticker_id": i.sticker_id, "score": i.score}
                for i in items
            ],
        )
        return suggestion_id, items

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
