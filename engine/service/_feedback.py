"""Feedback on suggestions, and the retraining samples logged where a chat opted in (sent and picked
stickers with the dialogue before them); the read side an export uses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine import samples as logged
from engine.db import Chat, Feedback, Suggestion, SuggestionItem, TrainingSample, User
from engine.history import History, HistoryTurn
from engine.service._identities import Identities
from engine.service._types import ChatRef, UserRef


class FeedbackLog:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], history: History, identities: Identities
    ) -> None:
        self.sessions = sessions
        self.history = history
        self.identities = identities

    async def feedback(
        self,
        suggestion_id: int | None,
        sticker_id: int,
        chat: ChatRef,
        user: UserRef | None,
        kind: str = "picked",
    ) -> None:
        async with self.sessions.begin() as session:
            c = await self.identities.existing_chat(session, chat)
            u = await self.identities.user(session, user)
            session.add(
                Feedback(
                    suggestion_id=suggestion_id,
                    chat_id=c.id,
                    user_id=u.id if u else None,
                    sticker_id=sticker_id,
                    kind=kind,
                )
            )
            if c.logging_enabled and kind in ("picked", "inline"):  # a retraining sample
                await self._log_pick(session, c, u, suggestion_id, sticker_id)

    async def _log_pick(
        self, session: AsyncSession, c: Chat, u: User | None, suggestion_id: int | None, sticker_id: int
    ) -> None:
        """A pick after /sticker: the dialogue the suggestion was made for, and what it showed."""
        shown: list[int] | None = None
        upto: int | None = None
        if suggestion_id is not None:
            sug = await session.get(Suggestion, suggestion_id)
            if sug is not None and sug.chat_id == c.id:
                upto = sug.last_message_id
                shown = list(
                    (
                        await session.execute(
                            select(SuggestionItem.sticker_id)
                            .where(SuggestionItem.suggestion_id == suggestion_id)
                            .order_by(SuggestionItem.rank)
                        )
                    ).scalars()
                )
        turns = since_opt_in(c, await self.history.recent(session, c.id))
        if upto is not None:
            turns = [t for t in turns if t.message_id <= upto]
        if not turns:
            return
        session.add(
            TrainingSample(
                chat_id=c.id,
                user_id=u.id if u else None,
                sticker_id=sticker_id,
                kind=logged.PICKED,
                suggestion_id=suggestion_id if shown is not None else None,
                context=logged.snapshot(turns),
                shown=shown,
            )
        )

    async def has_chat_sticker(self, chat: ChatRef, sticker: str) -> bool:
        """Is ``sticker`` (a platform sticker id) one of the chat's enabled packs' stickers?"""
        async with self.sessions() as session:
            c = await self.identities.chat(session, chat, create=False)
            if c is None:
                return False
            return await logged.find_chat_sticker(session, c.id, sticker, chat.platform) is not None

    async def record_sticker(
        self,
        chat: ChatRef,
        user: UserRef | None,
        sticker: str | int,
        message_id: str | None = None,
        at: datetime | None = None,
        *,
        packs_from: ChatRef | None = None,
    ) -> int | None:
        """A user sent a sticker. Where the chat's logging is on and the sticker is one of its packs'
        (``sticker``: the platform's stable sticker id, or the database id as an int; ``packs_from`` as in
        ``suggest``), keep it with the dialogue before it as a retraining sample. Returns the sample id,
        or None when nothing was kept (logging off, unknown sticker, no dialogue yet)."""
        async with self.sessions.begin() as session:
            c = await self.identities.existing_chat(session, chat)
            if not c.logging_enabled:
                return None
            pack_chat = c if packs_from is None else await self.identities.existing_chat(session, packs_from)
            s = await logged.find_chat_sticker(session, pack_chat.id, sticker, chat.platform)
            if s is None:
                return None
            turns = since_opt_in(c, await self.history.recent(session, c.id))
            if not turns:
                return None
            u = await self.identities.user(session, user)
            sample = TrainingSample(
                chat_id=c.id,
                user_id=u.id if u else None,
                sticker_id=s.id,
                kind=logged.SENT,
                platform_message_id=message_id,
                context=logged.snapshot(turns),
            )
            if at is not None:
                sample.created_at = at
            session.add(sample)
            await session.flush()
            return sample.id

    async def logged_samples(
        self, since: datetime | None = None, chats: Sequence[str] = ()
    ) -> list[logged.LoggedSample]:
        """What the CLI's `data export` may write (chats with logging on, oldest first)."""
        async with self.sessions() as session:
            return await logged.logged_samples(session, since, chats)

    async def sticker_rows(self, ids: Sequence[int]) -> dict[int, tuple[int, str | None, str]]:
        """sticker id → (pack id, emoji, media sha256), for an export's positives and candidates."""
        async with self.sessions() as session:
            return await logged.sticker_rows(session, ids)


def since_opt_in(chat: Chat, turns: list[HistoryTurn]) -> list[HistoryTurn]:
    """Only the turns written while the chat's logging was on may go into a training sample: people agreed
    to what is said after the opt-in, not before it."""
    after = chat.logging_after_message
    return turns if after is None else [t for t in turns if t.message_id > after]
