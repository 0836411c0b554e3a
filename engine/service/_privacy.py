"""Privacy: a chat's opt-in to logging for retraining, the history retention policy, /forget, and leaving
no copy of deleted rows in SQLite's write-ahead log."""

from __future__ import annotations

import logging

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine import samples as logged
from engine.db import (
    Chat,
    ChatPack,
    Feedback,
    Message,
    Suggestion,
    TrainingSample,
    checkpoint_truncate,
    rowcount,
)
from engine.history import History
from engine.ingest import MessageWriter
from engine.service._identities import Identities
from engine.service._types import ChatRef, UserRef

log = logging.getLogger(__name__)


class Privacy:
    def __init__(
        self,
        db_engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        history: History,
        identities: Identities,
        writer: MessageWriter,
    ) -> None:
        self.db_engine = db_engine
        self.sessions = sessions
        self.history = history
        self.identities = identities
        self.writer = writer

    async def set_logging(self, chat: ChatRef, enabled: bool) -> None:
        async with self.sessions.begin() as session:
            c = await self.identities.existing_chat(session, chat)
            if enabled and not c.logging_enabled:  # nothing written before the opt-in is kept
                newest = (await session.execute(select(func.max(Message.id)))).scalar()
                c.logging_after_message = int(newest or 0)
            c.logging_enabled = enabled
            if not enabled:  # opting out deletes what was logged for retraining
                await session.execute(delete(TrainingSample).where(TrainingSample.chat_id == c.id))
        if not enabled:
            await self.scrub_wal()

    async def logging_enabled(self, chat: ChatRef) -> bool:
        async with self.sessions() as session:
            c = await self.identities.chat(session, chat, create=False)
            return bool(c and c.logging_enabled)

    async def forget(self, user: UserRef) -> int:
        """Delete everything kept about a user in every chat. Returns the number of messages deleted."""
        async with self.sessions.begin() as session:
            u = await self.identities.user(session, user, create=False)
            if u is None:
                return 0
            n = rowcount(await session.execute(delete(Message).where(Message.user_id == u.id)))
            await session.execute(delete(Feedback).where(Feedback.user_id == u.id))
            await logged.forget_user(session, u.id)  # their samples and their turns in others'
            await session.execute(delete(Suggestion).where(Suggestion.requested_by == u.id))
            await session.execute(update(ChatPack).where(ChatPack.added_by == u.id).values(added_by=None))
            await session.delete(u)
        self.identities.forget(user=user)
        await self.scrub_wal()
        return int(n)

    async def apply_retention(self, platform: str | None = None) -> int:
        """Apply the history retention policy to every chat (of one platform), now: a quiet chat's old
        messages go too, not only when new ones arrive. Returns how many messages were deleted."""
        async with self.sessions.begin() as session:
            q = select(Chat.id)
            if platform:
                q = q.where(Chat.platform == platform)
            total = 0
            for (chat_id,) in (await session.execute(q)).all():
                total += await self.history.apply_retention(session, chat_id)
                self.writer.reset_retention(chat_id)
        if total:  # expired messages leave no copy in the WAL either
            await self.scrub_wal()
        return total

    async def scrub_wal(self) -> None:
        """After a deletion people asked for (or the retention policy made), no copy of it may stay in
        SQLite's WAL: deleted pages are zeroed by ``secure_delete``, the checkpoint writes them over the old
        ones and empties the WAL."""
        try:
            if not await checkpoint_truncate(self.db_engine):
                log.warning(
                    "the database's WAL is still read by another process; the next forget or retention run empties it"
                )
        except Exception:  # the deletion itself is committed; never fail the user's request over this
            log.warning("could not checkpoint the database's WAL", exc_info=True)
