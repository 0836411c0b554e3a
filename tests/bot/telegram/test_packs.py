from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.telegram import _set_import
from bot.telegram._packs import parse_set_name
from engine.db import Pack, Sticker
from engine.service import ChatRef
from tests.auxil.media import not_an_image, png_bytes, tgs_bytes, webm_bytes, webp_bytes
from tests.auxil.telegram import ALICE, BOB, CAROL, GROUP, OTHER_GROUP, Scripted, private
from tests.bot.telegram.conftest import GROUP_REF, Harness, buttons

SET = "Mixed_by_stickerpick_test_bot"


def mixed_set(tg: Harness) -> dict:
    """Static (WebP), animated (.tgs), video (.webm), a broken file, and one whose download fails."""
    sticker_set = tg.api.add_sticker_set(
        SET,
        "Mixed bag",
        [
            ("😀", "static", webp_bytes()),
            ("🎉", "animated", tgs_bytes(w=64, h=64, frames=6)),
            ("🎬", "video", webm_bytes(frames=3)),
            ("💥", "static", not_an_image()),
            ("🌧", "static", png_bytes(color=(0, 0, 200, 255))),
        ],
    )
    tg.api.failing_downloads.add(sticker_set["stickers"][4]["file_id"])
    return sticker_set


async def _stickers(tg: Harness) -> dict[str, tuple[str, str | None]]:
    async with tg.service.sessions() as session:
        rows = await session.execute(
            select(Sticker.platform_sticker_id, Sticker.kind, Sticker.platform_file_id)
            .join(Pack)
            .where(Pack.name == SET)
        )
        return {sid: (kind, fid) for sid, kind, fid in rows}


@pytest.mark.parametrize(
    "raw, name",
    [
        ("Animals", "Animals"),
        ("https://t.me/addstickers/Cats_by_bot", "Cats_by_bot"),
        ("t.me/addstickers/Cats_by_bot/", "Cats_by_bot"),
        ("http://telegram.me/addstickers/Dogs", "Dogs"),
        ("tg://addstickers?set=Dogs", "Dogs"),
        ("<https://t.me/addstickers/Dogs>", "Dogs"),
        ("https://evil.example/addstickers/Dogs", None),
        ("two words", None),
        ("../../etc", None),
    ],
)
def test_parse_set_name(raw, name):
    assert parse_set_name(raw) == name


async def test_addpack_imports_static_animated_and_video_stickers_with_progress(tg: Harness, monkeypatch):
    monkeypatch.setattr(_set_import, "PROGRESS_EDIT_INTERVAL_S", 0.0)  # show every step
    sticker_set = mixed_set(tg)
    await tg.send(tg.api.message(GROUP, ALICE, f"/addpack https://t.me/addstickers/{SET}"))

    stored = await _stickers(tg)
    assert {kind for kind, _ in stored.values()} == {"static", "animated", "video"}
    assert len(stored) == 3
    by_uid = {s["file_unique_id"]: s["file_id"] for s in sticker_set["stickers"]}
    assert all(fid == by_uid[uid] for uid, (_, fid) in stored.items())  # keyed by file_unique_id
    # one status message, edited as the import goes, ending in a report that names what was skipped
    [status] = [c for c in tg.api.sent(GROUP["id"]) if c.params["text"].startswith("Looking up")]
    edits = [c.params["text"] for c in tg.api.called("editMessageText")]
    assert edits[0] == "Adding <b>Mixed bag</b>: reading 5 stickers…"
    assert any("/5 stickers…" in e for e in edits[1:-1])
    final = edits[-1]
    assert final.startswith("Added <b>Mixed bag</b>") and "3 new, 0 already known" in final
    assert "Skipped 2" in final and "could not be fetched" in final
    assert status.params["reply_parameters"]
    assert [p.name for p in await tg.service.list_packs(GROUP_REF)] == [SET]

    # Every sticker was downloaded once; adding the set again (another chat) downloads nothing new but
    # retries the two that failed.
    assert sorted(tg.api.downloads) == sorted(s["file_id"] for s in sticker_set["stickers"])
    tg.api.add_chat(OTHER_GROUP, admins=[BOB])
    before = len(tg.api.downloads)
    await tg.send(tg.api.message(OTHER_GROUP, BOB, f"/addpack {SET}"))
    retried = tg.api.downloads[before:]
    assert sorted(retried) == sorted(s["file_id"] for s in sticker_set["stickers"][3:])
    assert "0 new, 3 already known" in tg.api.texts(OTHER_GROUP["id"])[-1]


async def test_a_failing_download_never_leaks_the_token(tg: Harness, caplog):
    mixed_set(tg)
    await tg.send(tg.api.message(GROUP, ALICE, f"/addpack {SET}"))
    secret = tg.api.token.partition(":")[2]
    everything = "\n".join(tg.api.texts()) + caplog.text
    assert "could not be fetched" in everything
    assert secret not in everything and tg.api.token not in everything


async def test_non_admins_are_refused_politely_and_nothing_changes(tg: Harness):
    mixed_set(tg)
    await tg.send(tg.api.message(GROUP, BOB, f"/addpack {SET}"))
    assert tg.api.texts(GROUP["id"]) == ["Sorry, only this chat's admins can do that."]
    assert tg.api.called("getStickerSet") == [] and tg.api.downloads == []
    assert await tg.service.list_packs(GROUP_REF) == []


async def test_admin_list_is_cached_and_a_failed_check_refuses(tg: Harness):
    await tg.send(tg.api.message(GROUP, BOB, "/removepack x"))
    await tg.send(tg.api.message(GROUP, BOB, "/logging on"))
    assert len(tg.api.called("getChatAdministrators")) == 1
    tg.api.add_chat(OTHER_GROUP, admins=[BOB])
    tg.api.fail_next("getChatAdministrators", Scripted(code=400, description="Bad Request: chat not found"))
    await tg.send(tg.api.message(OTHER_GROUP, BOB, "/logging on"))
    assert "couldn't check this chat's admins" in tg.api.texts(OTHER_GROUP["id"])[-1]
    assert not await tg.service.logging_enabled(ChatRef("telegram", str(OTHER_GROUP["id"])))


async def test_anonymous_admins_post_as_the_group(tg: Harness):
    anonymous = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
    await tg.send(tg.api.message(GROUP, anonymous, "/logging on", sender_chat=GROUP))
    assert await tg.service.logging_enabled(GROUP_REF)


async def test_unknown_and_custom_emoji_sets(tg: Harness):
    await tg.send(tg.api.message(GROUP, ALICE, "/addpack NoSuchSet"))
    assert tg.api.texts(GROUP["id"])[-1] == "I can't find a sticker set called <b>NoSuchSet</b>."
    tg.api.add_sticker_set(
        "Emoji_set", "Emoji", [("😀", "static", webp_bytes())], sticker_type="custom_emoji"
    )
    await tg.send(tg.api.message(GROUP, ALICE, "/addpack Emoji_set"))
    assert "custom emoji set" in tg.api.texts(GROUP["id"])[-1]
    await tg.send(tg.api.message(GROUP, ALICE, "/addpack"))
    assert "sticker set's name or link" in tg.api.texts(GROUP["id"])[-1]
    await tg.send(tg.api.message(GROUP, ALICE, "/addpack https://evil.example/x"))
    assert "is not a sticker set name" in tg.api.texts(GROUP["id"])[-1]
    assert await tg.service.list_packs(GROUP_REF) == []


async def test_packs_lists_and_removepack_removes_by_name_or_button(tg: Harness):
    mixed_set(tg)
    tg.api.add_sticker_set("Second", "Second one", [("🙂", "static", webp_bytes(w=40))])
    await tg.send(tg.api.message(GROUP, ALICE, f"/addpack {SET}"))
    await tg.send(tg.api.message(GROUP, ALICE, "/addpack Second"))

    await tg.send(tg.api.message(GROUP, BOB, "/packs"))  # anyone may look
    listing = tg.api.texts(GROUP["id"])[-1]
    assert listing.splitlines()[0] == "Sticker packs in this chat:"
    assert f'<a href="https://t.me/addstickers/{SET}">Mixed bag</a>' in listing and "— 3 stickers" in listing

    await tg.send(tg.api.message(GROUP, BOB, "/removepack Second"))
    assert tg.api.texts(GROUP["id"])[-1] == "Sorry, only this chat's admins can do that."
    await tg.send(tg.api.message(GROUP, ALICE, "/removepack second"))  # set names are case-insensitive
    assert tg.api.texts(GROUP["id"])[-1] == "Removed <b>Second one</b> from this chat."
    await tg.send(tg.api.message(GROUP, ALICE, "/removepack Second"))
    assert "not one of this chat's packs" in tg.api.texts(GROUP["id"])[-1]

    await tg.send(tg.api.message(GROUP, ALICE, "/removepack"))
    menu = tg.api.last_message(GROUP["id"])
    assert buttons(menu) == [("Mixed bag", f"r:{SET}")]
    await tg.send(tg.api.callback(BOB, menu, f"r:{SET}"))  # a non-admin's press changes nothing
    assert tg.api.called("answerCallbackQuery")[-1].params["show_alert"] is True
    assert len(await tg.service.list_packs(GROUP_REF)) == 1
    await tg.send(tg.api.callback(ALICE, menu, f"r:{SET}"))
    assert tg.api.texts(GROUP["id"])[-1] == f"Removed <b>{SET}</b> from this chat."
    assert await tg.service.list_packs(GROUP_REF) == []
    await tg.send(tg.api.message(GROUP, ALICE, "/packs"))
    assert "no sticker packs" in tg.api.texts(GROUP["id"])[-1]


async def test_a_button_press_whose_admin_check_fails_is_refused_with_an_alert(tg: Harness):
    mixed_set(tg)
    await tg.send(tg.api.message(GROUP, ALICE, f"/addpack {SET}"))
    await tg.send(tg.api.message(GROUP, ALICE, "/removepack"))
    menu = tg.api.last_message(GROUP["id"])
    tg.deps.admins.invalidate(GROUP["id"])
    tg.api.fail_next("getChatAdministrators", Scripted(code=400, description="Bad Request: chat not found"))
    await tg.send(tg.api.callback(ALICE, menu, f"r:{SET}"))  # an admin, but Telegram cannot say so now
    answer = tg.api.called("answerCallbackQuery")[-1].params
    assert answer["show_alert"] is True and "couldn't check this chat's admins" in answer["text"]
    assert [p.name for p in await tg.service.list_packs(GROUP_REF)] == [SET]


async def test_a_sticker_sent_in_private_offers_the_groups_the_user_administers(tg: Harness):
    mixed_set(tg)
    tg.api.add_chat(OTHER_GROUP, admins=[BOB])  # Alice writes there but is no admin
    for chat in (GROUP, OTHER_GROUP):
        await tg.send(tg.api.message(chat, ALICE, "hello"))
    sticker = tg.api.sticker_sets[SET]["stickers"][0]
    sent = tg.api.message(private(ALICE), ALICE, None, sticker=sticker)
    await tg.send(sent)

    offer = tg.api.last_message(ALICE["id"])
    assert offer["text"] == f"Add the sticker set <b>{SET}</b> to which chat?"
    assert buttons(offer) == [
        ("Friends", f"a:{GROUP['id']}"),
        ("Only for me (inline mode)", f"a:{ALICE['id']}"),
    ]
    offer["reply_to_message"] = sent["message"]  # Telegram returns the replied-to message in full

    await tg.send(tg.api.callback(ALICE, offer, f"a:{OTHER_GROUP['id']}"))  # forged: not her group
    assert (
        tg.api.called("answerCallbackQuery")[-1].params["text"].startswith("Sorry, only this chat's admins")
    )
    await tg.send(tg.api.callback(ALICE, offer, f"a:{GROUP['id']}"))
    assert [p.name for p in await tg.service.list_packs(GROUP_REF)] == [SET]
    assert tg.api.texts(ALICE["id"])[-1].startswith("Added <b>Mixed bag</b>")
    assert tg.api.texts(GROUP["id"])[-1] == "Alice added the sticker set <b>Mixed bag</b> to this chat."


async def test_private_offer_without_groups_and_a_sticker_without_a_set(tg: Harness):
    mixed_set(tg)
    sticker = dict(tg.api.sticker_sets[SET]["stickers"][0])
    sent = tg.api.message(private(CAROL), CAROL, None, sticker=sticker)
    await tg.send(sent)
    offer = tg.api.last_message(CAROL["id"])
    assert "I don't know a group where you are an admin" in offer["text"]
    offer["reply_to_message"] = sent["message"]
    await tg.send(tg.api.callback(CAROL, offer, f"a:{CAROL['id']}"))
    carol_chat = ChatRef("telegram", str(CAROL["id"]))
    assert [p.name for p in await tg.service.list_packs(carol_chat)] == [SET]

    del sticker["set_name"]
    await tg.send(tg.api.message(private(CAROL), CAROL, None, sticker=sticker))
    assert "not part of a sticker set" in tg.api.texts(CAROL["id"])[-1]


async def test_the_groups_own_set_is_added_when_the_bot_joins(tg: Harness):
    mixed_set(tg)
    tg.api.add_chat(GROUP, admins=[ALICE], sticker_set=SET)
    await tg.send(tg.api.my_chat_member(GROUP, ALICE, "left", "member"))
    texts = tg.api.texts(GROUP["id"])
    assert texts[0].startswith("Hi, I'm stickerpick!") and "privacy mode" not in texts[0]
    assert f"This group has its own sticker set, <b>{SET}</b>" in texts[1]
    assert [p.name for p in await tg.service.list_packs(GROUP_REF)] == [SET]


async def test_the_groups_own_set_is_noticed_later_once(tg: Harness):
    mixed_set(tg)
    tg.api.add_chat(GROUP, admins=[ALICE], sticker_set=SET)
    await tg.send(tg.api.message(GROUP, BOB, "/packs"))
    await tg.send(tg.api.message(GROUP, BOB, "/packs"))
    assert len(tg.api.called("getChat")) == 1 and len(tg.api.called("getStickerSet")) == 1
    assert [p.name for p in await tg.service.list_packs(GROUP_REF)] == [SET]


@pytest.mark.parametrize("api", [False], indirect=True)
async def test_welcome_warns_when_the_bot_cannot_read_the_group(tg: Harness):
    await tg.send(tg.api.my_chat_member(GROUP, ALICE, "left", "member"))
    assert "privacy mode" in tg.api.texts(GROUP["id"])[0]
    tg.api.calls.clear()
    await tg.send(tg.api.my_chat_member(OTHER_GROUP, ALICE, "left", "administrator"))
    assert "privacy mode" not in tg.api.texts(OTHER_GROUP["id"])[0]


async def test_two_imports_of_one_set_at_once_are_refused(tg: Harness):
    mixed_set(tg)
    tg.deps.importing.add(SET.lower())
    await tg.send(tg.api.message(GROUP, ALICE, f"/addpack {SET}"))
    assert tg.api.texts(GROUP["id"])[-1] == f"I'm already adding <b>{SET}</b> — hang on."


async def test_a_newly_promoted_admin_is_not_refused_for_the_whole_cache_lifetime(tg: Harness, monkeypatch):
    from bot.telegram import _admin

    clock = [1000.0]
    tg.deps.admins.clock = lambda: clock[0]
    await tg.send(tg.api.message(GROUP, BOB, "/logging on"))
    assert tg.api.texts(GROUP["id"])[-1] == "Sorry, only this chat's admins can do that."
    tg.api.admins[GROUP["id"]].append(BOB)  # promoted
    await tg.send(tg.api.message(GROUP, BOB, "/logging on"))  # within RECHECK_AFTER_S: still the cached list
    assert len(tg.api.called("getChatAdministrators")) == 1
    clock[0] += _admin.RECHECK_AFTER_S + 1
    await tg.send(tg.api.message(GROUP, BOB, "/logging on"))
    assert await tg.service.logging_enabled(GROUP_REF)
    assert len(tg.api.called("getChatAdministrators")) == 2


async def test_an_import_that_crashes_says_so_and_is_logged(tg: Harness, monkeypatch, caplog):
    mixed_set(tg)

    async def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(tg.service, "import_platform_pack", broken)
    await tg.send(tg.api.message(GROUP, ALICE, f"/addpack {SET}"))
    assert (
        tg.api.texts(GROUP["id"])[-1]
        == "Something went wrong while adding <b>Mixed bag</b>. Please try again later."
    )
    assert "database on fire" in caplog.text
    assert not tg.deps.importing  # the set may be added again


async def test_the_engines_refusals_of_a_set_are_worded_here(tg: Harness):
    """The engine refuses a set with a typed error; the report is this adapter's sentence from its fields."""
    from bot.telegram import _texts as texts

    tg.service.settings.max_pack_stickers = 2
    sticker_set = mixed_set(tg)
    await tg.send(tg.api.message(GROUP, ALICE, f"/addpack {SET}"))
    reason = texts.IMPORT_TOO_MANY.format(count=len(sticker_set["stickers"]), limit=2)
    assert tg.api.called("editMessageText")[-1].params["text"] == texts.IMPORT_FAILED.format(
        title="Mixed bag", reason=reason
    )
    tg.service.settings.max_pack_stickers = 100
    tg.api.add_sticker_set("Broken_by_stickerpick_test_bot", "Broken", [("💥", "static", not_an_image())])
    await tg.send(tg.api.message(GROUP, ALICE, "/addpack Broken_by_stickerpick_test_bot"))
    final = tg.api.called("editMessageText")[-1].params["text"]
    assert (
        final.startswith(texts.IMPORT_FAILED.format(title="Broken", reason=""))
        and texts.SKIP_UNSUPPORTED in final
    )
    assert "Nothing to import" not in final  # the engine's own sentence is for logs only
    assert [p.name for p in await tg.service.list_packs(GROUP_REF)] == []


def test_every_engine_refusal_and_skip_reason_has_a_sentence_in_every_language():
    from bot import i18n
    from bot.telegram import _texts as texts
    from engine import errors

    refusals = [
        errors.TooManyStickers(3, 2),
        errors.NothingToImport("Set", []),
        errors.NothingToImport("Set", [errors.Skipped("<b>x</b>", errors.SkipReason(errors.SkipKind.NO_ID))]),
        errors.PackBusy("Set"),
        errors.EmbeddingFailed("v1", "RuntimeError"),
        errors.UnknownPack("Set"),
    ]
    for language in i18n.LANGUAGES:
        token = i18n._language.set(language)
        try:
            for exc in refusals:
                said = texts.import_refusal(exc)
                assert said and said != str(exc) and "<b>x" not in said, (language, exc)
            for kind in errors.SkipKind:
                said = texts.skip_reason(errors.SkipReason(kind))
                assert said == texts.CATALOG.text(texts.SKIP_MESSAGES[kind], language), (language, kind)
        finally:
            i18n._language.reset(token)
