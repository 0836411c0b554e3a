"""A chat's dialogue history through the service: record (group-committed), edit, clear, read."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.db import Message, rowcount, utcnow
from engine.history import History, HistoryTurn
from engine.ingest import MessageWriter, PendingMessage
from engine.service._identities import Identities
from engine.service._types import ChatRef, UserRef


class Messages:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        history: History,
        identities: Identities,
        writer: MessageWriter,
    ) -> None:
        self.sessions = sessions
        self.history = history
        self.identities = identities
        self.writer = writer

    async def record(
        self,
        chat: ChatRef,
        user: UserRef | None,
        text: str,
        message_id: str | None = None,
        reply_to: str | None = None,
        at: datetime | None = None,
    ) -> int | None:
        """Append a message to the chat's history. Returns its id, or None when there was no text."""
        clean = self.history.normalise(text)
        if not clean:
            return None
        pending = PendingMessage(
            chat_id=await self.identities.chat_id(chat),
            user_id=await self.identities.user_id(user),
            text=clean,
            platform_message_id=message_id,
            reply_to=reply_to,
            created_at=at or utcnow(),
        )
        try:
            return await self.writer.write(pending)  # group commit; returns once committed
        except IntegrityError:
            # a cached id went stale (the user /forget-ed on another worker a moment ago): look up again
            self.identities.forget(chat, user)
            pending = replace(
                pending,
                chat_id=await self.identities.chat_id(chat),
                user_id=await self.identities.user_id(user),
            )
            return await self.writer.write(pending)

    async def edit(self, chat: ChatRef, message_id: str, text: str) -> bool:
        async with self.sessions.begin() as session:
            c = await self.identities.chat(session, chat, create=False)
            if c is None:
                return False
            return await self.history.edit(session, c.id, str(message_id), text)

    async def clear(self, chat: ChatRef) -> int:
        async with self.sessions.begin() as session:
            c = await self.identities.chat(session, chat, create=False)
            if c is None:
                return 0
            result = await session.execute(delete(Message).where(Message.chat_id == c.id))
            return rowcount(result)

    async def recent(self, chat: ChatRef) -> list[HistoryTurn]:
        async with self.sessions() as session:
            c = await self.identities.chat(session, chat, create=False)
            if c is None:
                return []
            return await self.history.recent(session, c.id)
