"""Who may change a chat's packs and logging: its admins, from getChatAdministrators, cached for a while."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from telegram import Bot, Chat, Message, User
from telegram.constants import ChatType
from telegram.error import TelegramError

# Telegram's "GroupAnonymousBot": the sender of messages by admins who post anonymously as the group.
ANONYMOUS_ADMIN_ID = 1087968824
# Someone not in a cached list older than this is looked up again: a just-promoted admin is not refused for
# the whole cache lifetime, and a stream of refusals costs at most one request per chat this often.
RECHECK_AFTER_S = 30.0


class AdminCheckFailed(Exception):
    """Telegram could not tell us the chat's admins (network, or the bot is no longer in the chat)."""


class AdminCache:
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._admins: dict[int, tuple[float, frozenset[int]]] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def admins(self, bot: Bot, chat_id: int, max_age_s: float | None = None) -> frozenset[int]:
        """The chat's admin ids, from a list at most ``max_age_s`` (default: the cache lifetime) old."""
        max_age = self.ttl_s if max_age_s is None else min(max_age_s, self.ttl_s)
        hit = self._admins.get(chat_id)
        if hit and self.clock() - hit[0] < max_age:
            return hit[1]
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        async with lock:  # one request per chat, however many commands arrive at once
            hit = self._admins.get(chat_id)
            if hit and self.clock() - hit[0] < max_age:
                return hit[1]
            try:
                members = await bot.get_chat_administrators(chat_id)
            except TelegramError as exc:
                raise AdminCheckFailed(str(exc)) from exc
            ids = frozenset(m.user.id for m in members)
            self._admins[chat_id] = (self.clock(), ids)
            return ids

    def invalidate(self, chat_id: int) -> None:
        self._admins.pop(chat_id, None)

    async def is_admin(self, bot: Bot, chat_id: int, user_id: int) -> bool:
        """``user_id`` administers ``chat_id``; a private chat (id == user id) is its user's own."""
        if chat_id == user_id:
            return True
        if user_id in await self.admins(bot, chat_id):
            return True
        return user_id in await self.admins(bot, chat_id, max_age_s=RECHECK_AFTER_S)

    async def may_manage(self, bot: Bot, chat: Chat, user: User | None, message: Message | None) -> bool:
        """The sender of ``message`` (or ``user``) may manage ``chat``: private chats always, anonymous admins
        posting as the group itself, else only the chat's admins."""
        if chat.type == ChatType.PRIVATE:
            return True
        if message is not None and message.sender_chat is not None and message.sender_chat.id == chat.id:
            return True  # an anonymous admin
        if user is None or user.id == ANONYMOUS_ADMIN_ID:
            return False
        return await self.is_admin(bot, chat.id, user.id)
