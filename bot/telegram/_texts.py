"""Every user-facing sentence of the Telegram adapter (HTML parse mode: escape anything dynamic)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape, unescape

from bot.i18n import Catalog
from bot.skip_messages import SKIP_MESSAGES
from engine.errors import (
    EmbeddingFailed,
    NothingToImport,
    PackBusy,
    PackError,
    Skipped,
    SkipReason,
    TooManyStickers,
)

PARSE_MODE = "HTML"

# Start-up failures, printed by `stickerpick telegram` (plain text, one line, never the token).
TOKEN_REFUSED = (
    "Telegram refused the bot token: check TELEGRAM_BOT_TOKEN (BotFather → /mybots → API Token) and, if set, "
    "STICKERPICK_TELEGRAM_BASE_URL."
)
STOPPED = "The Telegram bot stopped: {error} (STICKERPICK_LOG_LEVEL=DEBUG shows the traceback)."


class Messages:
    """The English source of every message, by name; ``texts.NAME`` answers it translated."""

    HELP = """\
<b>stickerpick</b> answers /sticker with the stickers from this chat's own packs that fit the conversation.

<b>Everyone</b>
/sticker [k] — I reply with the sticker that fits the last messages best. The buttons under it swap in \
one of the next best (the top {k} by default), ✓ keeps it, ✕ removes it; only the person who asked can press them.
/packs — the sticker packs this chat uses
/forget — delete everything I keep about you, in every chat
/help — this message
Inline mode: type <code>@{bot}</code> in any chat to pick from the stickers that fit the conversation you \
last wrote in (or type an emoji or a few words).

<b>Group admins</b>
/addpack <i>name or t.me/addstickers/… link</i> — add a sticker set to this chat
/removepack <i>name</i> — stop using a pack here
/logging on|off — allow keeping this chat's messages for retraining the model (off by default)
Or send me a sticker in a private chat: I offer to add its set to a group you administer. A group's own \
sticker set is added by itself.

<b>Privacy</b>
To rank stickers I read the recent conversation: every text message I can see in a group is kept for at \
most {days} days (and only the last {messages} per chat), then deleted. Nothing is kept for retraining unless \
an admin turns /logging on. /forget deletes your messages and choices, everywhere.
I see a group's messages only if I am an admin there or my privacy mode is off (BotFather → /setprivacy); \
otherwise I see only commands and replies to me, and /sticker has no conversation to go on."""

    START_PRIVATE = """\
Hi! Add me to a group, and /sticker there answers with the sticker from the group's own packs that fits the \
conversation best.

"""

    WELCOME_GROUP = """\
Hi, I'm stickerpick! Send /sticker and I reply with the sticker from this group's packs that fits the \
conversation. Admins add packs with /addpack <i>name or link</i>; /help explains everything, privacy included.
{privacy_note}"""

    PRIVACY_NOTE = (
        "⚠️ I can't read this group's messages yet, so /sticker would have nothing to go on: make me an admin, "
        "or turn my privacy mode off in @BotFather (/setprivacy) and add me again."
    )

    PRIVATE_ONLY_GROUPS = (
        "/sticker works in groups: add me to one, and it answers from the conversation there. In any chat you can "
        "also type @{bot} to pick a sticker inline."
    )

    # ------------------------------------------------------------------ /sticker
    ONLY_REQUESTER = "Only {name} can choose here. Send /sticker to get your own."
    SUGGESTION_EXPIRED = "This suggestion has expired: send /sticker again."
    KEPT = "Kept."
    BUTTON_KEEP = "✓ Keep"
    BUTTON_REMOVE = "✕ None fit"
    SEND_FAILED = "I couldn't send that sticker. Try /sticker again in a moment."
    NO_CONVERSATION = "There is no conversation here yet: say something first."
    COOLDOWN = "Easy there — try /sticker again in {seconds} s."

    # ------------------------------------------------------------------ inline
    INLINE_HINT_BUTTON = "Write in a group first, or type an emoji"

    # ------------------------------------------------------------------ admins
    NOT_ADMIN = "Sorry, only this chat's admins can do that."
    ADMIN_CHECK_FAILED = "I couldn't check this chat's admins just now. Please try again in a minute."

    # ------------------------------------------------------------------ packs
    ADDPACK_USAGE = (
        "Send /addpack with a sticker set's name or link, e.g. <code>/addpack https://t.me/addstickers/Animals</code>,"
        " or the name of one of my own packs, e.g. <code>/addpack noto-emoji</code>."
        " Or send me one of its stickers in a private chat."
    )
    ADDPACK_BAD_NAME = "{name} is not a sticker set name or t.me/addstickers link, nor one of my packs."
    LIBRARY_PACK_ADDED = "Done: this chat uses the pack <b>{name}</b> now. /packs lists them."
    SET_NOT_FOUND = "I can't find a sticker set called <b>{name}</b>."
    SET_CUSTOM_EMOJI = "<b>{name}</b> is a custom emoji set; I can only use sticker sets."
    SET_LOOKUP_FAILED = "I couldn't reach Telegram to look up <b>{name}</b>. Please try again in a minute."
    LOOKING_UP = "Looking up <b>{name}</b>…"
    ALREADY_IMPORTING = "I'm already adding <b>{name}</b> — hang on."
    IMPORT_STARTED = "Adding <b>{title}</b>: reading {total} stickers…"
    IMPORT_PROGRESS = "Adding <b>{title}</b>: {done}/{total} stickers…"
    IMPORT_DONE = "Added <b>{title}</b> ({link}): {added} new, {unchanged} already known."
    IMPORT_SKIPPED = "Skipped {n}: {examples}"
    IMPORT_FAILED = "I couldn't add <b>{title}</b>: {reason}"
    # {reason} of IMPORT_FAILED: why the engine refused the set
    IMPORT_TOO_MANY = "it has {count} stickers, and a pack may have at most {limit}."
    IMPORT_NOTHING = "none of its stickers could be used ({reasons})."
    NO_STICKERS_FOUND = "the set has no stickers"  # {reasons} of IMPORT_NOTHING when nothing was skipped
    IMPORT_BUSY = "it is already being added; send /addpack again once that is done."
    IMPORT_NOT_EMBEDDED = (
        "its stickers were stored, but the sticker model could not read them, so the pack is not used yet. "
        "Please try again later."
    )
    IMPORT_REFUSED = "this pack cannot be added."
    # why one sticker was skipped (the examples of IMPORT_SKIPPED, the reasons of IMPORT_NOTHING)
    SKIP_BAD_ID = "a missing or repeated sticker id"
    SKIP_LIMIT = "the import reached its size or time limit; add the set again for the rest"
    SKIP_LINK = "a link to another file (never followed)"
    SKIP_TOO_LARGE = "too large"
    SKIP_UNSUPPORTED = "a format I can't read"
    SKIP_DAMAGED = "damaged or unreadable"
    SKIP_FETCH_FAILED = "could not be fetched from Telegram"
    IMPORT_CRASHED = "Something went wrong while adding <b>{title}</b>. Please try again later."
    PACK_ANNOUNCED = "{who} added the sticker set <b>{title}</b> to this chat."
    GROUP_SET_ANNOUNCE = "This group has its own sticker set, <b>{title}</b>: adding it."

    NO_PACKS = "This chat has no sticker packs yet. An admin can add one with /addpack."
    PACKS_HEADER = "Sticker packs in this chat:"
    PACK_LINE = "• {title} — {count} stickers"
    REMOVEPACK_CHOOSE = "Which pack should I stop using here?"
    REMOVEPACK_UNKNOWN = "<b>{name}</b> is not one of this chat's packs; /packs lists them."
    REMOVED = "Removed <b>{name}</b> from this chat."

    STICKER_NO_SET = "This sticker is not part of a sticker set, so there is nothing to add."
    OFFER_CHOOSE = "Add the sticker set <b>{name}</b> to which chat?"
    OFFER_NO_GROUPS = (
        "Add the sticker set <b>{name}</b> where? I don't know a group where you are an admin yet: add me to one "
        "(and say something there), or add it just for your inline mode."
    )
    OFFER_ONLY_ME = "Only for me (inline mode)"
    OFFER_GONE = "I can't see the sticker any more: send it to me again."

    # ------------------------------------------------------------------ privacy
    STATE_ON = "on"  # {state} of the logging messages
    STATE_OFF = "off"
    LOGGING_STATE = "Keeping this chat's messages for retraining is <b>{state}</b>. Admins: /logging on|off."
    LOGGING_SET = "Keeping this chat's messages for retraining is now <b>{state}</b>."
    LOGGING_SET_ON_DETAIL = " Messages are still deleted after the retention period; /forget still works."
    FORGET_CONFIRM = (
        "This deletes every message I keep from you, your sticker choices and requests — in every chat. "
        "Sure, {name}?"
    )
    FORGET_YES = "Yes, forget me"
    FORGET_NO = "Cancel"
    FORGET_DONE = (
        "Done: I deleted {n} message{s} of yours and everything else I kept about you, in every chat."
    )
    FORGET_CANCELLED = "Cancelled: nothing was deleted."
    NOT_YOUR_BUTTON = "This button is for the person who asked."

    # ------------------------------------------------------------------ errors
    GENERIC_ERROR = "Sorry, something went wrong on my side. Please try again."

    # ------------------------------------------------------------------ the command menu (setMyCommands)
    CMD_STICKER = "the stickers that fit the conversation ([k] for how many)"
    CMD_PACKS = "the sticker packs this chat uses"
    CMD_ADDPACK = "add a sticker set (name or t.me/addstickers link)"
    CMD_REMOVEPACK = "stop using a pack here"
    CMD_LOGGING = "on|off: keep this chat's messages for retraining"
    CMD_FORGET = "delete everything kept about you"
    CMD_HELP = "what I do and what I keep"


CATALOG = Catalog("telegram", {k: v for k, v in vars(Messages).items() if k.isupper()})


def __getattr__(name: str) -> str:
    """``texts.NAME``: message ``NAME`` in the language of the update being handled (bot.i18n)."""
    if name in CATALOG.source:
        return CATALOG.text(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def html(text: object) -> str:
    return escape(str(text), quote=False)


def plain(text: str) -> str:
    """An HTML text as plain text (callback-query answers and alerts are not parsed)."""
    return unescape(re.sub(r"<[^>]+>", "", text))


def skip_reason(reason: SkipReason) -> str:
    """Why a sticker was skipped, in the user's language, with the decoder's or downloader's own words after
    it (English: they name the format's problem). Plain text: escape it for HTML."""
    worded = CATALOG.text(SKIP_MESSAGES[reason.kind])
    detail = reason.detail if len(reason.detail) <= 120 else reason.detail[:119] + "…"
    return f"{worded} ({detail})" if detail else worded


def skipped_examples(skipped: Sequence[Skipped], limit: int) -> str:
    """``label: reason; …`` for the first ``limit`` skipped stickers (plain text)."""
    return "; ".join(f"{label}: {skip_reason(why)}" for label, why in skipped[:limit])


def import_refusal(exc: PackError) -> str:
    """The {reason} of IMPORT_FAILED for a refused set (HTML). Only what a sticker set can meet is worded
    apart; the refusals of files (pack.json, folders) never reach Telegram."""
    if isinstance(exc, TooManyStickers):
        return CATALOG.text("IMPORT_TOO_MANY").format(count=exc.count, limit=exc.limit)
    if isinstance(exc, NothingToImport):
        reasons = skipped_examples(exc.skipped, 3) or CATALOG.text("NO_STICKERS_FOUND")
        return CATALOG.text("IMPORT_NOTHING").format(reasons=html(reasons))
    if isinstance(exc, PackBusy):
        return CATALOG.text("IMPORT_BUSY")
    if isinstance(exc, EmbeddingFailed):
        return CATALOG.text("IMPORT_NOT_EMBEDDED")
    return CATALOG.text("IMPORT_REFUSED")
