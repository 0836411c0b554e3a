"""What every handler shares: the engine service, settings, small in-memory caches; Telegram → engine refs."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from telegram import Chat, Message, Update, User
from telegram.constants import ChatType
from telegram.ext import Application, ContextTypes

from bot.telegram import _texts as texts
from bot.telegram._admin import AdminCache, AdminCheckFailed
from bot.telegram.settings import TelegramSettings
from engine.service import ChatRef, StickerService, SuggestedSticker, UserRef

PLATFORM = "telegram"
DEPS_KEY = "stickerpick"

# In-memory caches are bounded: a busy bot forgets the oldest entries, never grows without limit.
SUGGESTION_CACHE_SIZE = 2000
SUGGESTION_TTL_S = 24 * 3600.0  # /sticker buttons older than this answer "expired"
UPLOAD_CACHE_SIZE = 5000  # file_ids Telegram gave stickers we uploaded (local packs have none of their own)
INLINE_CHAT_CACHE_SIZE = 5000
INLINE_CHAT_TTL_S = 3600.0

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """A small LRU map with an optional time-to-live per entry."""

    def __init__(self, size: int, ttl_s: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.size, self.ttl_s, self.clock = size, ttl_s, clock
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        hit = self._data.get(key)
        if hit is None:
            return None
        stamp, value = hit
        if self.ttl_s is not None and self.clock() - stamp > self.ttl_s:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = (self.clock(), value)
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def pop(self, key: K) -> V | None:
        hit = self._data.pop(key, None)
        return hit[1] if hit else None

    def drop_where(self, predicate: Callable[[V], bool]) -> int:
        doomed = [k for k, (_, v) in self._data.items() if predicate(v)]
        for k in doomed:
            del self._data[k]
        return len(doomed)

    def values(self) -> list[V]:
        return [value for _, value in self._data.values()]

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class PendingSuggestion:
    """A /sticker answer whose buttons may still be pressed."""

    chat: ChatRef
    requester_id: int
    requester_name: str
    items: list[SuggestedSticker]
    command_message_id: int
    thread_id: int | None
    picked: set[int] = field(default_factory=set)  # ranks already recorded as feedback


@dataclass
class Deps:
    settings: TelegramSettings
    service: StickerService
    admins: AdminCache
    suggestions: BoundedCache[int, PendingSuggestion] = field(
        default_factory=lambda: BoundedCache(SUGGESTION_CACHE_SIZE, SUGGESTION_TTL_S)
    )
    # Suggestions settled here (kept or removed): never rebuilt from the database for a stale button press.
    settled: BoundedCache[int, bool] = field(
        default_factory=lambda: BoundedCache(SUGGESTION_CACHE_SIZE, SUGGESTION_TTL_S)
    )
    uploads: BoundedCache[int, str] = field(default_factory=lambda: BoundedCache(UPLOAD_CACHE_SIZE))
    inline_chats: BoundedCache[int, ChatRef] = field(
        default_factory=lambda: BoundedCache(INLINE_CHAT_CACHE_SIZE, INLINE_CHAT_TTL_S)
    )
    group_sets_checked: set[int] = field(default_factory=set)
    importing: set[str] = field(default_factory=set)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(
        self, application: Application, coro: Coroutine[Any, Any, Any], update: object | None = None
    ) -> asyncio.Task[Any]:
        """Run a long job (pack import) beside the update loop; its errors reach the error handler."""
        task: asyncio.Task[Any] = application.create_task(coro, update=update)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def forget_user(self, user_id: int) -> None:
        """Drop what the adapter holds in memory about a user (the engine deletes the rest)."""
        self.suggestions.drop_where(lambda p: p.requester_id == user_id)


def deps(context: ContextTypes.DEFAULT_TYPE) -> Deps:
    return context.application.bot_data[DEPS_KEY]


def chat_ref(chat: Chat) -> ChatRef:
    title = chat.title or chat.full_name or chat.username
    return ChatRef(PLATFORM, str(chat.id), title)


def user_ref(user: User) -> UserRef:
    return UserRef(PLATFORM, str(user.id), user.full_name)


def private_chat_ref(user: User) -> ChatRef:
    """A user's private chat with the bot (its id is the user's): where their own packs live."""
    return ChatRef(PLATFORM, str(user.id), user.full_name)


def is_group(chat: Chat | None) -> bool:
    return chat is not None and chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)


def speaker(message: Message) -> UserRef | None:
    """Who wrote a message; None for anonymous admins and channels posting as the group."""
    if message.sender_chat is not None or message.from_user is None:
        return None
    return user_ref(message.from_user)


def thread_of(message: Message) -> int | None:
    return message.message_thread_id if message.is_topic_message else None


def message_and_chat(update: Update) -> tuple[Message, Chat]:
    message, chat = update.effective_message, update.effective_chat
    assert message is not None and chat is not None  # guaranteed by the handlers' filters
    return message, chat


async def require_admin(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """True when the sender may manage this chat; otherwise a polite refusal is sent and nothing changes."""
    message, chat = message_and_chat(update)
    check = deps(context).admins.may_manage(context.bot, chat, update.effective_user, message)
    return await admin_checked(check, lambda text: message.reply_text(text, do_quote=True))


async def admin_checked(check: Awaitable[bool], refuse: Callable[[str], Awaitable[object]]) -> bool:
    """``check``'s answer whether someone is an admin; when not (or it cannot tell), ``refuse`` says so."""
    try:
        ok = await check
    except AdminCheckFailed:
        await refuse(texts.ADMIN_CHECK_FAILED)
        return False
    if not ok:
        await refuse(texts.NOT_ADMIN)
    return ok
