"""Bad text: huge messages, control characters, NUL, lone surrogates, RTL and zero-width characters,
SQL-looking text and pack names. Runs on SQLite, and on PostgreSQL with STICKERPICK_TEST_PG (which refuses NUL
in text and unencodable strings outright)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from engine.db import Message, Pack
from engine.library import BadPackName, PackError
from engine.preprocess import clean_text
from engine.service import ChatRef, UserRef
from tests.engine.test_service import make_pack

CHAT = ChatRef("test", "g", "Group")
ALICE = UserRef("test", "a", "alice")

NASTY = [
    pytest.param("pizza\x00 with\x00 NUL", "pizza with NUL", id="nul"),
    pytest.param("bell\x07 escape\x1b[31m red\x7f del\x9b csi", "bell escape[31m red del csi", id="controls"),
    pytest.param("lone \ud83d surrogate \udca9 halves", "lone surrogate halves", id="lone-surrogates"),
    pytest.param("zero\u200bwidth\ufeff bom", "zerowidth bom", id="zero-width"),
    pytest.param("evil \u202egnp.exe\u202c name", "evil gnp.exe name", id="bidi-override"),
    pytest.param("שלום עולם \u200f!", "שלום עולם \u200f!", id="rtl-kept"),
    pytest.param("مرحبا بالعالم", "مرحبا بالعالم", id="arabic-kept"),
    pytest.param("family 👨\u200d👩\u200d👧 ok", "family 👨\u200d👩\u200d👧 ok", id="zwj-emoji-kept"),
    pytest.param("'; DROP TABLE messages; --", "'; DROP TABLE messages; --", id="sql-text"),
    pytest.param("100% _done_ \\ %s %(x)s {0}", "100% _done_ \\ %s %(x)s {0}", id="format-specifiers"),
    pytest.param("  tabs\tand\nnew\r\nlines  ", "tabs and new lines", id="whitespace"),
]


@pytest.mark.parametrize(("raw", "kept"), NASTY)
async def test_nasty_text_is_stored_clean_and_read_back(service, raw: str, kept: str):
    assert clean_text(raw) == kept
    mid = await service.record(CHAT, ALICE, raw)
    async with service.sessions() as session:
        stored = await session.get(Message, mid)
    assert stored is not None and stored.text == kept
    assert [t.text for t in await service.recent(CHAT)] == [kept]


async def test_text_that_is_only_invisible_is_not_a_message(service):
    assert await service.record(CHAT, ALICE, "\x00\u200b\u202e \t\n\ud800") is None


async def test_a_megabyte_message_is_cut_quickly(service):
    huge = ("all work and no play " * 60_000)[:1_000_000]
    start = time.monotonic()
    mid = await service.record(CHAT, ALICE, huge)
    elapsed = time.monotonic() - start
    async with service.sessions() as session:
        stored = await session.get(Message, mid)
    assert stored is not None and len(stored.text) == service.settings.max_message_chars
    assert huge.startswith(stored.text.rstrip())
    assert elapsed < 1.0  # cut before cleaning, not a megabyte of per-character work


async def test_nasty_text_still_gets_suggestions(service, tmp_path):
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    for raw, _ in (p.values for p in NASTY):
        await service.record(CHAT, ALICE, raw)
    await service.record(CHAT, ALICE, "pizza with extra cheese " * 400)
    result = await service.suggest(CHAT, cooldown=False)
    assert result.items and result.items[0].emoji == "🍕"
    inline = await service.suggest(CHAT, text="sushi\x00 \ud83d \u202e rice", cooldown=False)
    assert inline.items


SQLISH = [
    "x'); DROP TABLE packs;--",
    "packs; DELETE FROM stickers",
    "%",
    "_",
    "a%",
    "' OR '1'='1",
    "name with spaces",
    "ünïcödé",
    "../../etc/passwd",
    "x" * 65,
    "food\n",  # a regex ``$`` matches before a final newline
    "food\x00",
    "\u202efood",
    "fo\ud800od",
    "food\t",
    "-food",
]


@pytest.mark.parametrize("name", SQLISH)
async def test_sql_looking_pack_names_are_refused_clearly_and_change_nothing(service, tmp_path, name: str):
    await service.import_pack(make_pack(tmp_path / "food"), name="food")
    with pytest.raises(BadPackName, match="Pack names use letters"):
        await service.import_pack(make_pack(tmp_path / "other"), name=name)
    with pytest.raises(PackError):  # an unknown pack, not a pattern that matches another
        await service.enable_pack(CHAT, name)
    with pytest.raises(PackError):
        await service.remove_pack(CHAT, name)
    with pytest.raises(PackError):
        await service.delete_pack(name)
    async with service.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Pack))).scalar_one() == 1
    assert [p.name for p in await service.list_packs()] == ["food"]


async def test_sql_looking_titles_and_tags_are_data(service, tmp_path):
    spec = {
        "name": "weird",
        "title": "Robert'); DROP TABLE packs;-- \x00\u202e",
        "stickers": [{"file": "a.png", "id": "a'--", "emoji": "🍕", "tags": ["'; DELETE FROM stickers; --"]}],
    }
    report = await service.add_pack(CHAT, make_pack(tmp_path / "weird", spec))
    assert report.added == 1
    [info] = await service.list_packs()
    assert info.title is not None and info.title.startswith("Robert'); DROP TABLE packs;--")
    await service.record(CHAT, ALICE, "pizza")
    assert (await service.suggest(CHAT, cooldown=False)).items[0].platform_sticker_id == "a'--"


async def test_platform_titles_and_names_are_cleaned_and_bounded(service):
    """Chat titles and display names come from the platform: NUL, overrides, any length."""
    chat = ChatRef("test", "t", "Group\x00 \u202eemaN " + "long " * 200)
    user = UserRef("test", "u", "Mallory\x00\ud800 " + "x" * 1000)
    assert await service.record(chat, user, "hello") is not None
    [turn] = await service.recent(chat)
    assert turn.speaker is not None and turn.speaker.startswith("Mallory x") and len(turn.speaker) == 256
    assert chat.title is not None and "\x00" not in chat.title and len(chat.title) <= 256


async def test_a_megabyte_inline_query_is_answered_quickly(service, tmp_path):
    await service.add_pack(CHAT, make_pack(tmp_path / "food"))
    huge = ("pizza \x00\u200b " * 120_000)[:1_000_000]
    start = time.monotonic()
    result = await service.suggest(CHAT, text=huge, cooldown=False)
    assert result.items
    assert time.monotonic() - start < 3.0


async def test_edits_are_cleaned_and_bounded_like_new_messages(service):
    await service.record(CHAT, ALICE, "first version", message_id="m1")
    assert await service.edit(CHAT, "m1", "second\x00 \u202eversion\ud800 " + "y" * 2_000_000)
    [turn] = await service.recent(CHAT)
    assert turn.text.startswith("second version y") and len(turn.text) == service.settings.max_message_chars
    assert "\x00" not in turn.text and "\u202e" not in turn.text


def test_clean_text_is_linear_and_drops_every_c0_c1_control():
    controls = "".join(chr(c) for c in [*range(32), *range(0x7F, 0xA0)] if chr(c) not in "\t\n\r")
    assert clean_text(f"a{controls}b") == "ab"
    nasty = ("\x00\u200b\ud800 x\u202e " * 200_000)[:1_000_000]
    start = time.monotonic()
    assert clean_text(nasty) == " ".join(["x"] * nasty.count("x"))
    assert time.monotonic() - start < 1.0
    combining = "Z" + "\u0301" * 100_000  # "zalgo": kept (it is text), but bounded by the caller's cut
    assert clean_text(combining) == combining


def test_history_normalisation_bounds_before_it_cleans():
    from engine.history import History, HistoryPolicy

    history = History(HistoryPolicy(max_message_chars=100))
    assert history.normalise("\x00" * 1_000_000) == ""  # only what survives the cut is cleaned
    assert history.normalise(" a " * 1_000_000) == " ".join(["a"] * 100)[:100]
    assert len(history.normalise("ü" * 1_000_000)) == 100


def test_pack_names_are_validated_before_any_query():
    from engine.library import validate_pack_name

    assert validate_pack_name("food_2-x") == "food_2-x"
    for bad in (*SQLISH, "", None, 42):
        with pytest.raises(BadPackName, match="Pack names use letters") as info:
            validate_pack_name(bad)  # type: ignore[arg-type]
        assert info.value.name == str(bad)


def _clean_text_by_char(text: str) -> str:
    """clean_text's definition, one character at a time."""
    dropped = set("\u200b\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")
    out = []
    for ch in text:
        o = ord(ch)
        if ch in "\t\n\r":
            out.append(" ")
        elif o < 32 or 0x7F <= o < 0xA0 or 0xD800 <= o < 0xE000 or ch in dropped:
            continue
        else:
            out.append(ch)
    return " ".join("".join(out).split())


def test_clean_text_agrees_with_its_definition_on_random_text():
    import random

    rng = random.Random(0)
    pool = [chr(c) for c in [*range(0, 0xA1), 0xD800, 0xDBFF, 0xDFFF, 0x2028, 0x3000, 0x00A0]]
    pool += [*"\u200b\u200c\u200d\u200e\u202a\u202e\u2066\u2069\ufeffжя中😀", "  ", "\r\n"]
    for _ in range(2000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 40)))
        assert clean_text(text) == _clean_text_by_char(text), repr(text)
