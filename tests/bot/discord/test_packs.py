"""/addpack, /packs, /removepack: who may, the server's own stickers in every format, uploads good and bad."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from sqlalchemy import select

from bot.discord import _texts as texts
from bot.discord._cog import ADDPACK_PER_S
from bot.discord._errors import Refusal
from bot.discord._packs import (
    SERVER_PACK,
    display_name,
    file_name_words,
    server_pack_name,
    sticker_emoji,
    upload_pack_name,
)
from engine.db import Pack, Sticker
from tests.auxil.discord import (
    OfflineServer,
    Person,
    attachment_payload,
    http_error,
    snowflake,
    sticker_payload,
)
from tests.auxil.media import lottie_json, not_an_image, png_bytes, truncated_png
from tests.bot.discord.conftest import LOTTIE, PNG, sticker_id
from tests.engine.test_service import make_pack


def upload(server: OfflineServer, filename: str, data: bytes) -> dict:
    attachment = attachment_payload(filename, len(data))
    server.api.cdn[attachment["url"]] = data
    return attachment


def zipped(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


async def stickers_of(server: OfflineServer, pack: str) -> list[Sticker]:
    async with server.bot.service.sessions() as session:
        q = select(Sticker).join(Pack).where(Pack.name == pack).order_by(Sticker.position)
        return list((await session.execute(q)).scalars())


async def pack_lines(server: OfflineServer, who: Person) -> list[str]:
    return (await server.slash(who, "packs")).content.splitlines()


# ---------------------------------------------------------------------------------------------- permissions
@pytest.mark.parametrize("command", ["addpack", "removepack", "logging"])
async def test_members_without_manage_permissions_are_refused(server: OfflineServer, alice, command):
    options = (
        {"name": "server"} if command == "removepack" else {"state": "on"} if command == "logging" else {}
    )
    answer = await server.slash(alice, command, options)
    assert answer.type == 4 and answer.ephemeral and answer.content == texts.MANAGERS_ONLY
    assert not any("stickers" in r or r.startswith("POST /channels") for r in server.api.routes())
    assert await server.bot.service.list_packs() == []


async def test_a_refusal_uses_no_cooldown_and_manage_server_is_enough(server: OfflineServer, alice):
    await server.slash(alice, "addpack")
    admin = Person(snowflake(), "admin")
    admin.permissions.manage_guild = True
    answer = await server.slash(admin, "addpack")
    assert answer.content.startswith("Added **server**: 4 new")


async def test_addpack_cooldown_per_server(stocked: OfflineServer, manager):
    again = await stocked.slash(manager, "addpack")
    assert again.ephemeral and again.content.startswith("Easy there: `/addpack`")


# ---------------------------------------------------------------------------------------------- server stickers
async def test_server_stickers_in_every_format(stocked: OfflineServer, manager):
    stickers = await stickers_of(stocked, server_pack_name(stocked.guild_id))
    by_name = {s.platform_sticker_id: s for s in stickers}
    formats = {int(k): (s.source_format, s.kind) for k, s in by_name.items()}
    assert formats == {
        sticker_id(stocked, "pizza_party"): ("png", "static"),
        sticker_id(stocked, "sushi_time"): ("apng", "animated"),
        sticker_id(stocked, "birthday"): ("gif", "animated"),
        sticker_id(stocked, "taco_dance"): ("tgs", "animated"),  # plain Lottie JSON, gzip'd by the adapter
    }
    pizza = by_name[str(sticker_id(stocked, "pizza_party"))]
    assert pizza.emoji == "🍕" and pizza.tags == ["pizza party", "pizza slice cheese"]
    assert (
        by_name[str(sticker_id(stocked, "birthday"))].emoji == "🎉"
    )  # the emoji's name, as Discord keeps it


async def test_a_second_import_downloads_only_new_stickers(stocked: OfflineServer, manager):
    stocked.advance(ADDPACK_PER_S)
    new = sticker_payload(snowflake(), stocked.guild_id, "wave", PNG, "wave", "hello wave")
    stocked.api.guild_stickers[stocked.guild_id].append(new)
    stocked.api.cdn[f"https://cdn.discordapp.com/stickers/{new['id']}.png"] = png_bytes(20, 20)
    before = len([r for r in stocked.api.requests if r.path == "cdn"])
    answer = await stocked.slash(manager, "addpack")
    assert answer.content.startswith("Added **server**: 1 new, 4 already there.")
    assert len([r for r in stocked.api.requests if r.path == "cdn"]) == before + 1


async def test_broken_and_missing_server_stickers_are_skipped_with_a_notice(
    migrated, service, monkeypatch, manager
):
    from tests.auxil.discord import offline_server

    stickers = [
        (sticker_payload(snowflake(), 0, "fine", PNG, "🙂", "fine"), png_bytes(30, 30)),
        (
            sticker_payload(snowflake(), 0, "good_lottie", LOTTIE, "", ""),
            json.dumps(lottie_json(64, 64)).encode(),
        ),
        (sticker_payload(snowflake(), 0, "bad_lottie", LOTTIE, "x", "broken"), b'{"v": "5.5.2", "w": 512'),
    ]
    async with offline_server(migrated, service, monkeypatch, stickers=stickers) as server:
        missing = sticker_payload(snowflake(), server.guild_id, "gone", PNG, "", "")
        server.api.guild_stickers[server.guild_id].append(missing)  # listed, but its file is not on the CDN
        answer = await server.slash(manager, "addpack")
        lines = answer.content.splitlines()
        assert lines[0].startswith("Added **server**: 2 new") and lines[1] == "Skipped 2:"
        assert lines[2].startswith("• bad\\_lottie: ") and "Lottie" in lines[2]
        assert lines[3].startswith("• gone: could not be fetched")
        assert lines[4:] == [texts.LOTTIE_NOTE, texts.LOTTIE_SKIPPED_NOTE]


async def test_a_server_without_stickers(migrated, service, monkeypatch, manager):
    from tests.auxil.discord import offline_server

    async with offline_server(migrated, service, monkeypatch) as server:
        answer = await server.slash(manager, "addpack")
        assert answer.content == texts.NO_SERVER_STICKERS
        assert await service.list_packs() == []


async def test_discord_outage_during_import(server: OfflineServer, manager):
    server.api.fail("GET", "/guilds/{guild_id}/stickers", http_error(500, 0, "oops"))
    answer = await server.slash(manager, "addpack")
    assert answer.content == texts.DISCORD_FAILED.format(status=500)


# ---------------------------------------------------------------------------------------------- uploads
async def test_upload_images_as_a_named_pack_and_add_more_later(server: OfflineServer, manager):
    red, blue = png_bytes(30, 30, (255, 0, 0, 255)), png_bytes(30, 30, (0, 0, 255, 255))
    answer = await server.slash(
        manager,
        "addpack",
        {"name": "My Cats"},
        attachments={
            "file": upload(server, "grumpy_cat.png", red),
            "file2": upload(server, "image.png", blue),
        },
    )
    assert answer.content == "Added **My-Cats**: 2 new, 0 already there. `/sticker` can use them now."
    internal = upload_pack_name(server.guild_id, "My Cats")
    stickers = await stickers_of(server, internal)
    assert [s.tags for s in stickers] == [["grumpy cat"], []]
    # Pasted pictures are all called image.png: a new picture under the same name is a new sticker, the same
    # picture again is not.
    green = png_bytes(30, 30, (0, 255, 0, 255))
    again = await server.slash(
        manager,
        "addpack",
        {"name": "My Cats"},
        attachments={"file": upload(server, "image.png", green), "file2": upload(server, "image.png", blue)},
    )
    assert again.content.startswith("Easy there")  # the per-server cooldown of /addpack
    server.advance(ADDPACK_PER_S)
    again = await server.slash(
        manager,
        "addpack",
        {"name": "My Cats"},
        attachments={"file": upload(server, "image.png", green), "file2": upload(server, "image.png", blue)},
    )
    assert again.content.startswith("Added **My-Cats**: 1 new, 1 already there.")
    assert await pack_lines(server, manager) == [texts.PACKS_HEADER, "• **My-Cats** — 3 stickers (My Cats)"]
    server.advance(ADDPACK_PER_S)
    removed = await server.slash(manager, "removepack", {"name": "my cats"})  # by its title works too
    assert removed.content == texts.REMOVED_PACK.format(name="My-Cats")
    assert (await server.slash(manager, "packs")).content == texts.NO_PACKS
    back = await server.slash(manager, "addpack", {"name": "My Cats"})  # again, without uploading anything
    assert back.content == texts.PACK_ENABLED.format(name="My-Cats")


async def test_upload_a_zip_with_a_broken_member(server: OfflineServer, manager):
    data = zipped(
        {
            "pack.json": json.dumps({"stickers": [{"file": "ok.png", "id": "ok", "emoji": "👍"}]}),
            "ok.png": png_bytes(30, 30),
            "1f602.png": png_bytes(31, 31),
            "broken.png": truncated_png(),
        }
    )
    answer = await server.slash(
        manager, "addpack", attachments={"file": upload(server, "reactions.zip", data)}
    )
    lines = answer.content.splitlines()
    assert lines[0] == "Added **reactions**: 2 new, 0 already there. `/sticker` can use them now."
    assert lines[1] == "Skipped 1:" and lines[2].startswith("• broken.png: ")
    emoji = {
        s.platform_sticker_id: s.emoji
        for s in await stickers_of(server, upload_pack_name(server.guild_id, "reactions"))
    }
    assert emoji == {"ok": "👍", "1f602": "😂"}


async def test_a_zip_member_named_with_control_characters_is_shown_escaped(server: OfflineServer, manager):
    """A name from a pack never reaches a Discord answer raw (terminal escapes, overrides)."""
    data = zipped({"ok.png": png_bytes(30, 30), "\x1b[2J\u202eevil.png": truncated_png()})
    answer = await server.slash(manager, "addpack", attachments={"file": upload(server, "ansi.zip", data)})
    assert "\x1b" not in answer.content and "\u202e" not in answer.content
    assert "\\x1b" in answer.content and "\\u202e" in answer.content


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"file": ("notes.txt", b"hello")}, texts.BAD_UPLOAD_TYPE.format(file="notes.txt")),
        ({"file": ("fake.zip", b"PK not really")}, texts.NOT_A_ZIP.format(file="fake.zip")),
        (
            {"file": ("a.zip", b"x"), "file2": ("b.png", b"y")},
            texts.ONE_ZIP.format(n=3),
        ),
    ],
)
async def test_bad_uploads_are_refused_and_change_nothing(server: OfflineServer, manager, files, message):
    attachments = {option: upload(server, name, data) for option, (name, data) in files.items()}
    answer = await server.slash(manager, "addpack", attachments=attachments)
    assert answer.ephemeral and answer.content == message
    assert await server.bot.service.list_packs() == []


async def test_a_broken_image_upload_changes_nothing(server: OfflineServer, manager):
    attachments = {
        "file": upload(server, "oops.png", not_an_image()),
        "file2": upload(server, "cut.png", truncated_png()),
    }
    answer = await server.slash(manager, "addpack", {"name": "oops"}, attachments=attachments)
    assert answer.content.startswith("Nothing to import into")
    assert (
        "oops.png" in answer.content
        and "/tmp" not in answer.content
        and "stickerpick-discord" not in answer.content
    )
    assert await server.bot.service.list_packs() == []
    assert (await server.slash(manager, "packs")).content == texts.NO_PACKS


@pytest.mark.parametrize(
    ("name", "files", "expected"),
    [
        (
            "meta.zip",
            {"pack.json": json.dumps({"stickers": [{"id": "a"}]}), "a.png": png_bytes(30, 30)},
            texts.BAD_PACK_JSON.format(detail="stickers.0.file: Field required"),
        ),
        (
            "many.zip",
            {f"{i}.png": png_bytes(30, 30, (i, 0, 0, 255)) for i in range(3)},
            texts.TOO_MANY_STICKERS.format(count=3, limit=2),
        ),
        (
            "my_pack.zip",
            {"cut.png": truncated_png()},
            texts.NOTHING_TO_IMPORT.format(name="my\\_pack", reasons=f"cut.png: {texts.SKIP_DAMAGED} ("),
        ),
    ],
)
async def test_the_engines_refusals_of_an_upload_are_worded_here(
    server: OfflineServer, manager, name, files, expected
):
    """The engine refuses with typed errors; the answer is this adapter's sentence, built from their fields,
    naming the pack as the member knows it (never the library's name or the upload's temporary path)."""
    server.bot.service.settings.max_pack_stickers = 2
    answer = await server.slash(manager, "addpack", attachments={"file": upload(server, name, zipped(files))})
    assert answer.ephemeral and answer.content.startswith(expected)
    assert f"g{server.guild_id}" not in answer.content and "/tmp" not in answer.content
    assert await server.bot.service.list_packs() == []


def test_every_engine_refusal_and_skip_reason_has_a_sentence_in_every_language():
    from bot.i18n import LANGUAGES
    from engine import errors

    refusals = [
        errors.UnknownPack("g1-x"),
        errors.PackNotEnabled("g1-x"),
        errors.PackBusy("g1-x"),
        errors.EmbeddingFailed("v1", "RuntimeError"),
        errors.TooManyImages("/tmp/stickerpick-discord-x/upload.zip", 3, 2),
        errors.InvalidPackJson(errors.PackJsonProblem.TOO_DEEP),
        errors.UnreadableMetadata("pack.json", errors.MetadataProblem.NOT_UTF8, detail="invalid start byte"),
        errors.NotAPackSource("/tmp/stickerpick-discord-x/upload"),
    ]
    for language in LANGUAGES:
        for exc in refusals:
            with _lang(language):
                said = texts.pack_refusal(exc)
            assert said and "/tmp" not in said and "g1-x" not in said and said != str(exc), (language, exc)
        for kind in errors.SkipKind:
            with _lang(language):
                said = texts.skip_reason(errors.SkipReason(kind))
            assert said == texts.CATALOG.text(texts.SKIP_MESSAGES[kind], language), (language, kind)
    with _lang("ru"):
        assert (
            texts.skip_reason(errors.SkipReason(errors.SkipKind.TOO_LARGE, detail="x"))
            == "слишком большой (x)"
        )


def _lang(language: str):
    """Answer in ``language`` inside the block (as an interaction in that locale would)."""
    import contextlib

    from bot import i18n

    @contextlib.contextmanager
    def block():
        token = i18n._language.set(language)
        try:
            yield
        finally:
            i18n._language.reset(token)

    return block()


async def test_an_upload_over_the_size_limit_is_not_downloaded(server: OfflineServer, manager):
    big = attachment_payload("huge.png", server.bot.settings.max_media_bytes + 1)
    answer = await server.slash(manager, "addpack", attachments={"file": big})
    assert answer.content.startswith("**huge.png** is ") and "the limit is 8 MB" in answer.content
    assert not any(r.path == "cdn" for r in server.api.requests)


# ---------------------------------------------------------------------------------------------- library, list, remove
async def test_a_shared_library_pack(server: OfflineServer, manager, tmp_path):
    await server.bot.service.import_pack(make_pack(tmp_path / "food"))
    answer = await server.slash(manager, "addpack", {"name": "food"})
    assert answer.content == texts.PACK_ENABLED.format(name="food")
    server.advance(ADDPACK_PER_S)
    unknown = await server.slash(manager, "addpack", {"name": "nope"})
    assert unknown.content == texts.NO_SUCH_LIBRARY_PACK.format(name="nope")
    assert await pack_lines(server, manager) == [
        texts.PACKS_HEADER,
        "• **food** — 5 stickers (Food stickers)",
    ]


async def test_list_autocomplete_and_remove(stocked: OfflineServer, manager, alice, tmp_path):
    await stocked.bot.service.import_pack(make_pack(tmp_path / "food"))
    stocked.advance(ADDPACK_PER_S)
    await stocked.slash(manager, "addpack", {"name": "food"})
    lines = await pack_lines(stocked, alice)  # everyone may list
    assert lines == [
        texts.PACKS_HEADER,
        "• **server** — 4 stickers (Snack Club's server stickers)",
        "• **food** — 5 stickers (Food stickers)",
    ]
    choices = await stocked.autocomplete(manager, "removepack", "name", "SER")
    assert choices == [{"name": "server", "value": "server"}]

    missing = await stocked.slash(manager, "removepack", {"name": "cats"})
    assert missing.content == texts.NOT_IN_SERVER.format(name="cats")
    removed = await stocked.slash(manager, "removepack", {"name": "Server"})
    assert removed.ephemeral and removed.content == texts.REMOVED_PACK.format(name="server")
    assert await pack_lines(stocked, alice) == [texts.PACKS_HEADER, "• **food** — 5 stickers (Food stickers)"]


async def test_packs_of_two_servers_do_not_mix(migrated, service, monkeypatch, manager):
    from tests.auxil.discord import offline_server

    async with (
        offline_server(migrated, service, monkeypatch, guild_name="One") as one,
        offline_server(migrated, service, monkeypatch, guild_name="Two") as two,
    ):
        for server, colour in ((one, (1, 2, 3, 255)), (two, (4, 5, 6, 255))):
            data = png_bytes(30, 30, colour)
            await server.slash(
                manager, "addpack", {"name": "cats"}, attachments={"file": upload(server, "c.png", data)}
            )
        assert await pack_lines(one, manager) == [texts.PACKS_HEADER, "• **cats** — 1 sticker"]
        assert await pack_lines(two, manager) == [texts.PACKS_HEADER, "• **cats** — 1 sticker"]
        assert len(await service.list_packs()) == 2


# ---------------------------------------------------------------------------------------------- naming helpers
def test_pack_names():
    assert server_pack_name(42) == "discord-42" and display_name(42, "discord-42") == SERVER_PACK
    assert upload_pack_name(42, "My Cats!") == "g42-My-Cats"
    assert display_name(42, "g42-My-Cats") == "My-Cats" and display_name(7, "g42-My-Cats") == "g42-My-Cats"
    assert len(upload_pack_name(10**18, "x" * 200)) <= 64
    with pytest.raises(Refusal) as info:  # the adapter's own refusal, worded for the member
        upload_pack_name(42, "!!!")
    assert str(info.value) == texts.BAD_PACK_NAME.format(name="!!!")


def test_sticker_emoji_and_file_words():
    assert sticker_emoji("🍕") == "🍕" and sticker_emoji("pizza") == "🍕" and sticker_emoji(":tada:") == "🎉"
    assert sticker_emoji("not an emoji name") is None and sticker_emoji("") is None
    assert file_name_words("grumpy_cat-2") == ["grumpy cat 2"]
    assert file_name_words("image") == [] and file_name_words("12345") == []
