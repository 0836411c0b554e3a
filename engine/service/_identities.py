"""Chats and users: their database rows, created on first sight, and a bounded cache of their ids."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from cachetools import LRUCache
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.db import Chat, ChatPack, Message, Pack, User, utcnow
from engine.service._types import ChatRef, UserRef

# ("c" | "u", platform, platform id): a chat or a user
IdKey = tuple[str, str, str]


class Identities:
    """Looks chats and users up (creating them on first sight) and remembers their ids, so recording a
    message costs no lookup. A new chat starts with ``default_packs`` enabled."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], cache_size: int, default_packs: Sequence[str] = ()
    ) -> None:
        self.sessions = sessions
        self.default_packs = list(default_packs)
        # Bounded however many chats a bot is in: a forgotten id costs one lookup.
        self._ids: LRUCache[IdKey, tuple[int, str | None]] = LRUCache(max(1, cache_size))

    async def chat(self, session: AsyncSession, ref: ChatRef, create: bool = True) -> Chat | None:
        q = select(Chat).where(Chat.platform == ref.platform, Chat.platform_chat_id == str(ref.chat_id))
        chat = (await session.execute(q)).scalar_one_or_none()
        if chat is None and create:
            try:
                async with session.begin_nested():
                    chat = Chat(platform=ref.platform, platform_chat_id=str(ref.chat_id), title=ref.title)
                    session.add(chat)
                    await session.flush()
                    await self._enable_defaults(session, chat)
            except IntegrityError:  # created concurrently by another worker
                chat = (await session.execute(q)).scalar_one()
        elif chat is not None and ref.title and chat.title != ref.title:
            chat.title = ref.title
        if chat is not None:
            self._ids[("c", ref.platform, str(ref.chat_id))] = (chat.id, chat.title)
        return chat

    async def existing_chat(self, session: AsyncSession, ref: ChatRef) -> Chat:
        """The chat, created on first sight."""
        chat = await self.chat(session, ref)
        assert chat is not None
        return chat

    async def _enable_defaults(self, session: AsyncSession, chat: Chat) -> None:
        if not self.default_packs:
            return
        packs = (await session.execute(select(Pack).where(Pack.name.in_(self.default_packs)))).scalars()
        for pack in packs:
            session.add(ChatPack(chat_id=chat.id, pack_id=pack.id, enabled=True))
        chat.packs_version += 1

    async def user(self, session: AsyncSession, ref: UserRef | None, create: bool = True) -> User | None:
        if ref is None:
            return None
        q = select(User).where(User.platform == ref.platform, User.platform_user_id == str(ref.user_id))
        user = (await session.execute(q)).scalar_one_or_none()
        if user is None and create:
            try:
                async with session.begin_nested():
                    user = User(
                        platform=ref.platform, platform_user_id=str(ref.user_id), display_name=ref.name
                    )
                    session.add(user)
                    await session.flush()
            except IntegrityError:
                user = (await session.execute(q)).scalar_one()
        elif user is not None and ref.name and user.display_name != ref.name:
            user.display_name = ref.name
        if user is not None:
            self._ids[("u", ref.platform, str(ref.user_id))] = (user.id, user.display_name)
        return user

    async def chat_id(self, ref: ChatRef) -> int:
        """The chat's database id (created on first sight) from a bounded cache: no lookup per message."""
        hit = self._ids.get(("c", ref.platform, str(ref.chat_id)))
        if hit is not None and (not ref.title or hit[1] == ref.title):
            return hit[0]
        async with self.sessions.begin() as session:
            return (await self.existing_chat(session, ref)).id

    async def user_id(self, ref: UserRef | None) -> int | None:
        if ref is None:
            return None
        hit = self._ids.get(("u", ref.platform, str(ref.user_id)))
        if hit is not None and (not ref.name or hit[1] == ref.name):
            return hit[0]
        async with self.sessions.begin() as session:
            user = await self.user(session, ref)
            return user.id if user else None

    def forget(self, chat: ChatRef | None = None, user: UserRef | None = None) -> None:
        """Drop cached ids (stale after a /forget, or on another worker)."""
        if chat is not None:
            self._ids.pop(("c", chat.platform, str(chat.chat_id)), None)
        if user is not None:
            self._ids.pop(("u", user.platform, str(user.user_id)), None)

    async def recent_chat_for(self, user: UserRef, within_s: float) -> ChatRef | None:
        """The chat this user last wrote in, if within ``within_s`` seconds (inline queries carry no chat)."""
        async with self.sessions() as session:
            u = await self.user(session, user, create=False)
            if u is None:
                return None
            row = (
                await session.execute(
                    select(Chat.platform, Chat.platform_chat_id, Chat.title, Message.created_at)
                    .join(Message, Message.chat_id == Chat.id)
                    .where(Message.user_id == u.id, Chat.platform == user.platform)
                    .order_by(Message.id.desc())
                    .limit(1)
                )
            ).first()
        if row is None:
            return None
        created = row[3] if row[3].tzinfo else row[3].replace(tzinfo=utcnow().tzinfo)
        if utcnow() - created > timedelta(seconds=within_s):
            return None
        return ChatRef(row[0], row[1], row[2])

    async def chats_of(self, user: UserRef, limit: int = 20) -> list[ChatRef]:
        """The chats this user has written in (their kept history), most recent first: where a platform
        adapter may offer to add a pack the user sent it privately. Chats other than groups are included;
        the adapter decides where the user may act (e.g. is an admin)."""
        async with self.sessions() as session:
            u = await self.user(session, user, create=False)
            if u is None:
                return []
            last = func.max(Message.id).label("last")
            rows = (
                await session.execute(
                    select(Chat.platform, Chat.platform_chat_id, Chat.title, last)
                    .join(Message, Message.chat_id == Chat.id)
                    .where(Message.user_id == u.id, Chat.platform == user.platform)
                    .group_by(Chat.id, Chat.platform, Chat.platform_chat_id, Chat.title)
                    .order_by(last.desc())
                    .limit(limit)
                )
            ).all()
        return [ChatRef(platform, chat_id, title) for platform, chat_id, title, _ in rows]
