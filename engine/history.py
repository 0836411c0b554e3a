"""Per-chat dialogue history: append, edit, read the recent window, enforce retention."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import Message, User, rowcount, utcnow
from engine.preprocess import clean_text


@dataclass(frozen=True)
class HistoryTurn:
    """One kept message of a chat, as the ranker reads it (``training.data.format.Turn`` is a dataset's)."""

    message_id: int
    from_id: int | None  # the users.id of the speaker (speaker-aware, as StickerChat's from_id)
    speaker: str | None
    text: str
    created_at: datetime


@dataclass(frozen=True)
class HistoryPolicy:
    max_turns: int = 8
    max_tokens: int = 128
    retention_messages: int = 500
    retention_days: int = 30
    max_message_chars: int = 4096


class History:
    def __init__(self, policy: HistoryPolicy) -> None:
        self.policy = policy

    def normalise(self, text: str) -> str:
        limit = self.policy.max_message_chars
        # cut first (with room for the whitespace cleaning removes): a 1 MB message costs what 16 KB does
        return clean_text(text[: 4 * limit])[:limit]

    async def edit(self, session: AsyncSession, chat_id: int, platform_message_id: str, text: str) -> bool:
        result = await session.execute(
            update(Message)
            .where(Message.chat_id == chat_id, Message.platform_message_id == platform_message_id)
            .values(text=self.normalise(text), edited_at=utcnow())
        )
        return bool(rowcount(result))

    async def recent(
        self,
        session: AsyncSession,
        chat_id: int,
        max_turns: int | None = None,
        max_tokens: int | None = None,
        count_tokens: Callable[[str], int] | None = None,
    ) -> list[HistoryTurn]:
        """The last turns of a chat, oldest first, at most ``max_turns`` and (if a counter is given) about
        ``max_tokens`` tokens: the newest turn always survives."""
        rows = (await session.execute(self.recent_query(chat_id, max_turns))).all()
        return self.window(rows, max_tokens, count_tokens)

    def recent_query(
        self, chat_id: Any, max_turns: int | None = None
    ) -> Select[int, int | None, str | None, str, datetime]:
        """The newest kept messages of a chat, newest first, as :meth:`window` reads them; ``chat_id`` may be
        a column expression (a scalar subquery), so the query can be part of a larger one."""
        return (
            select(
                Message.id.label("message_id"),
                Message.user_id,
                User.display_name,
                Message.text,
                Message.created_at,
            )
            .outerjoin(User, User.id == Message.user_id)
            .where(Message.chat_id == chat_id, Message.text != "")
            .order_by(Message.id.desc())
            .limit(max_turns or self.policy.max_turns)
        )

    def window(
        self,
        rows: Iterable[Sequence[Any]],
        max_tokens: int | None = None,
        count_tokens: Callable[[str], int] | None = None,
    ) -> list[HistoryTurn]:
        """Turns from rows of (message id, user id, display name, text, created), newest first: oldest first,
        within about ``max_tokens`` tokens if a counter is given (the newest turn always survives)."""
        token_limit = max_tokens or self.policy.max_tokens
        turns: list[HistoryTurn] = []
        used = 0
        for mid, uid, name, text, created in rows:
            if count_tokens is not None:
                cost = count_tokens(text)
                if turns and used + cost > token_limit:
                    break
                used += cost
            turns.append(HistoryTurn(mid, uid, name, text, created))
        turns.reverse()
        return turns

    async def apply_retention(self, session: AsyncSession, chat_id: int, now: datetime | None = None) -> int:
        """Drop messages past the per-chat count or age limit. Returns how many were deleted."""
        cutoff_time = (now or utcnow()) - timedelta(days=self.policy.retention_days)
        keep_from = (
            await session.execute(
                select(Message.id)
                .where(Message.chat_id == chat_id)
                .order_by(Message.id.desc())
                .offset(self.policy.retention_messages - 1)
                .limit(1)
            )
        ).scalar_one_or_none()
        cond = Message.created_at < cutoff_time
        if keep_from is not None:
            cond = cond | (Message.id < keep_from)
        result = await session.execute(delete(Message).where(Message.chat_id == chat_id, cond))
        return rowcount(result)
