"""Every user-facing sentence of the Discord adapter (Discord markdown: escape anything dynamic with `md`)."""

from __future__ import annotations

from collections.abc import Sequence

import discord
from discord import app_commands

from bot.i18n import SOURCE_LANGUAGE, Catalog, normalize
from bot.skip_messages import SKIP_MESSAGES
from engine.errors import (
    EmbeddingFailed,
    InvalidPackJson,
    NothingToImport,
    PackBusy,
    PackError,
    PackNotEnabled,
    Skipped,
    SkipReason,
    TooManyStickers,
    UnknownPack,
    UnreadableMetadata,
)
from engine.library import MAX_METADATA_BYTES


class Messages:
    """The English source of every message, by name; ``texts.NAME`` answers it translated."""

    HELP = """\
**stickerpick** answers `/sticker` with the stickers from this server's own packs that fit the conversation.

**Everyone**
`/sticker [k] [about]` — I post the sticker that fits this channel's last messages best (or the text in \
`about`). Only you see the menu under my answer: pick another of the top {k} to post it instead, or remove it.
`/packs` — the sticker packs this server uses
`/forget` — delete everything I keep about you, in every server
`/help` — this message

**Members with Manage Expressions or Manage Server**
`/addpack` — add this server's own stickers as a pack (run it again after adding stickers)
`/addpack file:… [name:…]` — upload images (PNG, APNG, GIF, WebP, JPEG, up to 3) or one .zip of them as a pack
`/addpack name:…` — use a pack again after `/removepack`, or a shared pack of the bot's library (`noto-emoji`)
`/removepack name` — stop using a pack in this server
`/logging on|off` — allow keeping this channel's messages for retraining the model (off by default)

**Privacy**
To rank stickers I read the recent conversation of a channel or thread: every text message I can see is \
kept for at most {days} days (and only the last {messages} per channel), then deleted. Nothing is kept for \
retraining unless a manager turns `/logging on` in that channel. `/forget` deletes your messages and choices."""

    NO_MESSAGE_CONTENT_NOTE = (
        "\n\nThis bot runs without Discord's message-content intent: I only see messages that mention me, so use "
        "`/sticker about:…` to say what the sticker is for."
    )

    # ------------------------------------------------------------------ /sticker
    THINKING_FAILED = "Nothing to suggest."
    NO_CONVERSATION = "There is no conversation here yet: say something first."
    STICKER_COOLDOWN = "Easy there — try /sticker again in {seconds} s."
    POSTED = "Posted {label}{pack}."
    PICK_HINT = "Not the one? Pick another below: it replaces the posted sticker."
    ALREADY_POSTED = "{label} is already posted: noted as your pick."
    REPLACED = "Posted {label}{pack} instead."
    REMOVED = "Removed the sticker."
    FROM_PACK = " from *{pack}*"  # after a sticker's name: the pack it is from
    PICK_PLACEHOLDER = "Post another instead…"
    BUTTON_REMOVE = "Remove"
    ONLY_REQUESTER = "Only {name} can choose here: run /sticker for your own."
    EXPIRED = "This suggestion has expired: run /sticker again."
    FOR_USER = "-# /sticker · {mention}"
    CANNOT_SEND_HERE = (
        "I can't post in this channel: give me the **Send Messages** permission here (**Send Messages in "
        "Threads** in a thread)."
    )
    CANNOT_ATTACH = "I can't post pictures in this channel: give me the **Attach Files** permission here."
    GONE_STICKER = "removed sticker"  # a server sticker deleted since the import: posted as its picture
    STICKER_FILE_MISSING = "That sticker's picture is missing from the library: run /sticker again."

    # ------------------------------------------------------------------ packs
    MANAGERS_ONLY = "Sorry, only members with **Manage Expressions** or **Manage Server** can do that."
    GUILD_ONLY = "This command works in a server channel."
    NOT_A_MEMBER = (
        "I'm not in this server as a bot yet: ask a manager to invite me with the `bot` and "
        "`applications.commands` scopes."
    )
    NO_PACKS = "This server has no sticker packs yet. A manager can add some with `/addpack`."
    PACKS_HEADER = "Sticker packs in this server:"
    PACK_LINE = "• **{name}** — {n} sticker{s}{title}"
    PACKS_MORE = "… and {n} more"
    SERVER_PACK_TITLE = "{guild}'s server stickers"
    NO_SERVER_STICKERS = (
        "This server has no stickers of its own yet. Add some in Server Settings → Stickers, or upload images "
        "with `/addpack file:…`."
    )
    IMPORTED = "Added **{name}**: {added} new, {unchanged} already there. `/sticker` can use them now."
    IMPORTED_SKIPPED = "Skipped {n}:"
    SKIPPED_LINE = "• {file}: {why}"
    LOTTIE_NOTE = (
        "Animated (Lottie) stickers are ranked by a still frame and posted as the real, animated sticker."
    )
    LOTTIE_SKIPPED_NOTE = "Animated (Lottie) stickers that could not be drawn as a still were skipped."
    PACK_ENABLED = "This server now uses **{name}**."
    NO_SUCH_LIBRARY_PACK = (
        "There is no shared pack called **{name}**. To make a pack of your own, attach images or a .zip: "
        "`/addpack file:… name:…`."
    )
    REMOVED_PACK = "This server no longer uses **{name}**."
    NOT_IN_SERVER = "This server doesn't use a pack called **{name}**: `/packs` lists them."
    BAD_UPLOAD_TYPE = "**{file}** is not an image (PNG, APNG, GIF, WebP, JPEG) or a .zip of images."
    UPLOAD_TOO_BIG = "**{file}** is {size} MB; the limit is {limit} MB."
    ONE_ZIP = "Upload either one .zip or up to {n} images, not both."
    NOT_A_ZIP = "**{file}** is not a readable .zip archive."
    BAD_PACK_NAME = "Pack names need at least one letter or digit; **{name}** has none."
    DOWNLOAD_FAILED = "I couldn't download **{file}** from Discord. Please try again in a minute."
    # the engine's refusals of a pack
    PACK_GONE = "This server doesn't use that pack: `/packs` lists them."
    PACK_BUSY = "That pack is being added right now: run `/addpack` again once that is done."
    NOT_EMBEDDED = (
        "The stickers were stored, but the sticker model could not read them, so the pack is not used yet. "
        "Please try again later."
    )
    TOO_MANY_STICKERS = "That is {count} stickers; a pack may have at most {limit}."
    NOTHING_TO_IMPORT = "Nothing to import into **{name}**: {reasons}"
    NO_IMAGES_FOUND = "no image files found"  # {reasons} of NOTHING_TO_IMPORT when nothing was skipped
    BAD_PACK_JSON = "The `pack.json` in the zip is not valid: {detail}"
    BAD_METADATA_FILE = (
        "I couldn't read **{file}** in the zip: it must be a UTF-8 text file of at most {limit} MB."
    )
    PACK_REFUSED = "I couldn't add that pack."
    # why one sticker was skipped ({why} of SKIPPED_LINE, the reasons of NOTHING_TO_IMPORT)
    SKIP_BAD_ID = "a missing or repeated sticker id"
    SKIP_LIMIT = "the import reached its size or time limit; run `/addpack` again for the rest"
    SKIP_LINK = "a link to another file (never followed)"
    SKIP_TOO_LARGE = "too large"
    SKIP_UNSUPPORTED = "a format I can't read"
    SKIP_DAMAGED = "damaged or unreadable"
    SKIP_FETCH_FAILED = "could not be fetched from Discord"

    # ------------------------------------------------------------------ privacy
    STATE_ON = "on"  # {state} of the logging messages
    STATE_OFF = "off"
    LOGGING_STATE = "Logging for retraining is **{state}** in {channel}."
    LOGGING_SET = (
        "{user} turned logging for retraining **{state}** in {channel}. {detail} `/forget` deletes your own "
        "messages at any time."
    )
    LOGGING_ON_DETAIL = "Messages here may now be kept to improve the sticker model."
    LOGGING_OFF_DETAIL = "Messages here are kept only for the recent conversation, then deleted."
    FORGOT = (
        "Done: I deleted {n} of your message{s} and your sticker choices, in every server. New messages you write "
        "where I can read them are kept again for the recent conversation."
    )

    # ------------------------------------------------------------------ errors
    COOLDOWN = "Easy there: {command} can be used again in {seconds:.0f} s here."
    THIS_COMMAND = "This command"  # {command} of COOLDOWN when the command is not known
    FAILED = "Something went wrong on my side; it has been logged. Please try again."
    DISCORD_FAILED = "Discord refused that request ({status}). Please try again in a minute."

    # ------------------------------------------------------------------ command and option descriptions
    CMD_STICKER = "Post the sticker from this server's packs that fits the chat"
    CMD_STICKER_K = "How many of the best stickers to choose from"
    CMD_STICKER_ABOUT = "Find a sticker for this text instead of the recent conversation"
    CMD_PACKS = "The sticker packs this server uses"
    CMD_ADDPACK = "Add this server's stickers, or uploaded images or a .zip, as a pack"
    CMD_ADDPACK_FILE = "An image or a .zip of images (leave empty to add this server's own stickers)"
    CMD_ADDPACK_NAME = "Name for an uploaded pack, or a shared pack to use (e.g. noto-emoji)"
    CMD_ADDPACK_FILE2 = "Another image"
    CMD_REMOVEPACK = "Stop using a sticker pack in this server"
    CMD_REMOVEPACK_NAME = "The pack's name, as /packs shows it"
    CMD_LOGGING = "Allow keeping this channel's messages for retraining"
    CMD_LOGGING_STATE = "on: messages here may be kept to improve the model; off (default): they are not"
    CMD_FORGET = "Delete everything stickerpick keeps about you"
    CMD_HELP = "What stickerpick does, its commands and what it keeps"


CATALOG = Catalog("discord", {k: v for k, v in vars(Messages).items() if k.isupper()})


def __getattr__(name: str) -> str:
    """``texts.NAME``: message ``NAME`` in the language of the interaction being handled (bot.i18n)."""
    if name in CATALOG.source:
        return CATALOG.text(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def described(name: str) -> app_commands.locale_str:
    """A command or option description: English here, translated per locale by :class:`Translator`."""
    return app_commands.locale_str(CATALOG.source[name], key=name)


class Translator(app_commands.Translator):
    """Command and option descriptions in every Discord locale the catalogs cover. Command and option names
    stay English: the help texts, the other adapters and people's habits all say `/sticker`."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        key = string.extras.get("key")
        language = normalize(locale.value)
        if key is None or language == SOURCE_LANGUAGE:
            return None
        return CATALOG.translate(key, language)


def md(text: object) -> str:
    """Dynamic text made safe to show: markdown escaped, mentions defused."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(str(text)))


def plural(n: int) -> str:
    return "" if n == 1 else "s"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def skip_reason(reason: SkipReason) -> str:
    """Why a sticker was skipped, in the member's language (markdown), with the decoder's or downloader's own
    words after it (English: they name the format's problem, such as a Lottie feature)."""
    worded = CATALOG.text(SKIP_MESSAGES[reason.kind])
    return f"{worded} ({md(clip(reason.detail, 120))})" if reason.detail else worded


def nothing_to_import(name: str, skipped: Sequence[Skipped], limit: int = 5) -> str:
    """NOTHING_TO_IMPORT for the pack members call ``name``: the first ``limit`` skipped files and why."""
    reasons = "; ".join(f"{md(label)}: {skip_reason(why)}" for label, why in skipped[:limit])
    return CATALOG.text("NOTHING_TO_IMPORT").format(
        name=md(name), reasons=reasons or CATALOG.text("NO_IMAGES_FOUND")
    )


def pack_refusal(exc: PackError) -> str:
    """The engine's refusal of a pack, in the member's language. Its fields name the library's packs
    (``g<guild>-name``), not what members type, so the sentences here do without them; an upload's refusals
    that name it are worded where the upload is known (``_packs.import_upload``)."""
    if isinstance(exc, UnknownPack | PackNotEnabled):
        return CATALOG.text("PACK_GONE")
    if isinstance(exc, PackBusy):
        return CATALOG.text("PACK_BUSY")
    if isinstance(exc, EmbeddingFailed):
        return CATALOG.text("NOT_EMBEDDED")
    if isinstance(exc, TooManyStickers):
        return CATALOG.text("TOO_MANY_STICKERS").format(count=exc.count, limit=exc.limit)
    if isinstance(exc, NothingToImport):
        return nothing_to_import(exc.pack_name, exc.skipped)
    if isinstance(exc, InvalidPackJson):
        detail = f"{exc.location}: {exc.message}" if exc.location else exc.message or exc.problem.value
        return CATALOG.text("BAD_PACK_JSON").format(detail=md(clip(detail, 300)))
    if isinstance(exc, UnreadableMetadata):
        limit_mb = f"{(exc.limit or MAX_METADATA_BYTES) / 1_000_000:g}"
        return CATALOG.text("BAD_METADATA_FILE").format(file=md(exc.file), limit=limit_mb)
    return CATALOG.text("PACK_REFUSED")
