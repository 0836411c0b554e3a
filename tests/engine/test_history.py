from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from engine.db import Message, utcnow
from engine.history import History, HistoryPolicy
from engine.service import ChatRef, UserRef

CHAT = ChatRef("test", "c1")
ALICE = UserRef("test", "1", "alice")
BOB = UserRef("test", "2", "bob")


async def test_history_is_ordered_speaker_aware_and_windowed(service):
    for i in range(12):
        await service.record(CHAT, ALICE if i % 2 == 0 else BOB, f"message {i}", message_id=str(i))
    turns = await service.recent(CHAT)
    assert [t.text for t in turns] == [f"message {i}" for i in range(4, 12)]  # history_turns = 8
    assert [t.speaker for t in turns[:2]] == ["alice", "bob"]
    assert turns[0].from_id != turns[1].from_id and turns[0].from_id == turns[2].from_id


async def test_token_budget_keeps_the_newest_turns(service):
    await service.record(CHAT, ALICE, "one two three four five six seven eight nine ten")
    await service.record(CHAT, BOB, "eleven twelve")
    async with service.sessions() as session:
        chat = await service.identities.chat(session, CHAT, create=False)
        turns = await service.history.recent(
            session, chat.id, max_tokens=5, count_tokens=lambda t: len(t.split())
        )
    assert [t.text for t in turns] == ["eleven twelve"]
    async with service.sessions() as session:
        turns = await service.history.recent(
            session, chat.id, max_tokens=1, count_tokens=lambda t: len(t.split())
        )
    assert [t.text for t in turns] == ["eleven twelve"]  # the newest turn always survives


async def test_edit_updates_history_and_blank_messages_are_ignored(service):
    await service.record(CHAT, ALICE, "helo", message_id="m1")
    assert await service.record(CHAT, ALICE, "   \n\t ") is None
    assert await service.edit(CHAT, "m1", "hello")
    assert [t.text for t in await service.recent(CHAT)] == ["hello"]
    assert not await service.edit(ChatRef("test", "unknown"), "m1", "x")


async def test_retention_bounds_each_chat(service):
    history = History(HistoryPolicy(retention_messages=5, retention_days=30))
    other = ChatRef("test", "c2")
    for i in range(9):
        await service.record(CHAT, ALICE, f"m{i}")
    await service.record(other, BOB, "keep me")
    async with service.sessions.begin() as session:
        chat = await service.identities.chat(session, CHAT, create=False)
        old = Message(chat_id=chat.id, text="ancient", created_at=utcnow() - timedelta(days=40))
        session.add(old)
    async with service.sessions.begin() as session:
        chat = await service.identities.chat(session, CHAT, create=False)
        deleted = await history.apply_retention(session, chat.id)
    assert deleted == 6  # 5 beyond the newest 5, and "ancient": among the newest ids but past 30 days
    async with service.sessions() as session:
        texts = list((await session.execute(select(Message.text).order_by(Message.id))).scalars())
    assert texts == ["m5", "m6", "m7", "m8", "keep me"]
    async with service.sessions() as session:
        n = (await session.execute(select(func.count()).select_from(Message))).scalar_one()
    assert n == 5


async def test_long_and_control_characters_are_cleaned(service):
    service.history.policy = HistoryPolicy(max_message_chars=10)
    await service.record(CHAT, ALICE, "a\x00b\x1bc\u200f d" + "x" * 50)
    (turn,) = await service.recent(CHAT)
    assert turn.text == "abc\u200f dxxxx"
