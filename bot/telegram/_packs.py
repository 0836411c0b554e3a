"""Sticker packs: `/addpack`, `/packs`, `/removepack`, stickers sent in private, a group's own set.

Adding a set runs in the background (:mod:`bot.telegram._set_import`), reporting on one status message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from contextlib import suppress

from telegram import (
    CallbackQuery,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.error import TelegramError
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.telegram import _texts as texts
from bot.telegram._admin import AdminCheckFailed
from bot.telegram._context import (
    PLATFORM,
    admin_checked,
    chat_ref,
    deps,
    is_group,
    message_and_chat,
    require_admin,
    speaker,
    user_ref,
)
from bot.telegram._errors import describe
from bot.telegram._set_import import already_importing, set_link, start_import
from engine.library import PackError
from engine.service import ChatRef, PackInfo

log = logging.getLogger(__name__)

OFFER_SCAN_CHATS = 20  # chats of a user checked for admin rights when they send a sticker in private
OFFER_MAX_GROUPS = 8
CALLBACK_DATA_MAX_BYTES = 64  # Bot API limit
REMOVE_PREFIX = "r"
OFFER_PREFIX = "a"

SET_NAME = r"[A-Za-z0-9_]{1,64}"
SET_LINK_RE = re.compile(
    rf"^(?:https?://)?(?:www\.)?(?:t\.me|telegram\.me|telegram\.dog)/addstickers/({SET_NAME})/?(?:\?.*)?$",
    re.I,
)
SET_TG_RE = re.compile(rf"^tg://addstickers\?set=({SET_NAME})$", re.I)
SET_NAME_RE = re.compile(rf"^{SET_NAME}$")


def parse_set_name(raw: str) -> str | None:
    """A sticker set's name from `Name`, `t.me/addstickers/Name` (http(s), telegram.me) or `tg://addstickers`."""
    raw = raw.strip().strip("<>")
    for regex in (SET_LINK_RE, SET_TG_RE, SET_NAME_RE):
        match = regex.match(raw)
        if match:
            return match.group(1) if match.groups() else match.group(0)
    return None


# ------------------------------------------------------------------ /addpack
async def addpack_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, chat = message_and_chat(update)
    if not await require_admin(update, context):
        return
    if not context.args:
        await message.reply_text(texts.ADDPACK_USAGE, parse_mode=texts.PARSE_MODE, do_quote=True)
        return
    d = deps(context)
    raw = context.args[0].strip()
    if "/" not in raw and ":" not in raw and await d.service.has_pack(raw, platform="local"):
        # a pack of the library by name (the default noto-emoji after a /removepack, a pack imported with
        # `stickerpick packs add`): names with hyphens are no Telegram set names
        await d.service.enable_pack(chat_ref(chat), raw, by=speaker(message))
        await message.reply_text(
            texts.LIBRARY_PACK_ADDED.format(name=texts.html(raw)), parse_mode=texts.PARSE_MODE, do_quote=True
        )
        return
    name = parse_set_name(raw)
    if name is None:
        await message.reply_text(
            texts.ADDPACK_BAD_NAME.format(name=texts.html(context.args[0][:80])),
            parse_mode=texts.PARSE_MODE,
            do_quote=True,
        )
        return
    if already_importing(d, name):
        await message.reply_text(
            texts.ALREADY_IMPORTING.format(name=texts.html(name)), parse_mode=texts.PARSE_MODE, do_quote=True
        )
        return
    status = await message.reply_text(
        texts.LOOKING_UP.format(name=texts.html(name)), parse_mode=texts.PARSE_MODE, do_quote=True
    )
    start_import(context, chat_ref(chat), name, speaker(message), status)


# ------------------------------------------------------------------ /packs
def _pack_line(p: PackInfo) -> str:
    title = texts.html(p.title or p.name)
    if p.platform == PLATFORM:
        label = f'<a href="{set_link(p.name)}">{title}</a> ({texts.html(p.name)})'
    else:
        label = f"<b>{title}</b> ({texts.html(p.name)})"
    return texts.PACK_LINE.format(title=label, count=p.stickers)


async def packs_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, chat = message_and_chat(update)
    await ensure_group_set(context, chat)
    packs = await deps(context).service.list_packs(chat_ref(chat))
    if not packs:
        await message.reply_text(texts.NO_PACKS, do_quote=True)
        return
    text = "\n".join([texts.PACKS_HEADER, *(_pack_line(p) for p in packs)])
    await message.reply_text(
        text,
        parse_mode=texts.PARSE_MODE,
        do_quote=True,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )


# ------------------------------------------------------------------ /removepack
def _find(packs: list[PackInfo], name: str) -> PackInfo | None:
    return next((p for p in packs if p.name.lower() == name.lower()), None)


async def removepack_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, chat = message_and_chat(update)
    if not await require_admin(update, context):
        return
    d = deps(context)
    ref = chat_ref(chat)
    packs = await d.service.list_packs(ref)
    if not context.args:
        buttons = [
            [InlineKeyboardButton(p.title or p.name, callback_data=f"{REMOVE_PREFIX}:{p.name}")]
            for p in packs
            if len(f"{REMOVE_PREFIX}:{p.name}".encode()) <= CALLBACK_DATA_MAX_BYTES
        ]
        if not buttons:
            await message.reply_text(texts.NO_PACKS, do_quote=True)
            return
        await message.reply_text(
            texts.REMOVEPACK_CHOOSE, reply_markup=InlineKeyboardMarkup(buttons), do_quote=True
        )
        return
    raw = context.args[0]
    pack = _find(packs, parse_set_name(raw) or raw)
    if pack is None:
        await message.reply_text(
            texts.REMOVEPACK_UNKNOWN.format(name=texts.html(raw[:80])),
            parse_mode=texts.PARSE_MODE,
            do_quote=True,
        )
        return
    try:
        await d.service.remove_pack(ref, pack.name)
    except PackError:  # gone since the list was read (removed meanwhile)
        await message.reply_text(
            texts.REMOVEPACK_UNKNOWN.format(name=texts.html(raw[:80])),
            parse_mode=texts.PARSE_MODE,
            do_quote=True,
        )
        return
    await message.reply_text(
        texts.REMOVED.format(name=texts.html(pack.title or pack.name)),
        parse_mode=texts.PARSE_MODE,
        do_quote=True,
    )


def _alert(query: CallbackQuery) -> Callable[[str], Awaitable[bool]]:
    """Answers a button press with an alert (what a refusal of a button says)."""
    return lambda text: query.answer(text, show_alert=True)


async def removepack_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query, chat = update.callback_query, update.effective_chat
    assert query is not None
    if chat is None:
        await query.answer()
        return
    d = deps(context)
    if not await admin_checked(d.admins.may_manage(context.bot, chat, query.from_user, None), _alert(query)):
        return
    name = (query.data or "").partition(":")[2]
    try:
        await d.service.remove_pack(chat_ref(chat), name)
    except PackError:  # gone since the buttons were made (removed meanwhile, or by another admin)
        await query.answer(
            texts.plain(texts.REMOVEPACK_UNKNOWN.format(name=texts.html(name)))[:200], show_alert=True
        )
        return
    await query.answer()
    with suppress(TelegramError):
        await query.edit_message_text(
            texts.REMOVED.format(name=texts.html(name)), parse_mode=texts.PARSE_MODE
        )


# ------------------------------------------------------------------ a sticker sent in private
async def private_sticker(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, _ = message_and_chat(update)
    sticker, user = message.sticker, message.from_user
    assert sticker is not None and user is not None
    if not sticker.set_name:
        await message.reply_text(texts.STICKER_NO_SET, do_quote=True)
        return
    d = deps(context)
    groups: list[ChatRef] = []
    for ref in await d.service.chats_of(user_ref(user), limit=OFFER_SCAN_CHATS):
        chat_id = int(ref.chat_id)
        if chat_id >= 0:  # a private chat; groups have negative ids
            continue
        try:
            if await d.admins.is_admin(context.bot, chat_id, user.id):
                groups.append(ref)
        except AdminCheckFailed:
            continue
        if len(groups) >= OFFER_MAX_GROUPS:
            break
    rows = [
        [InlineKeyboardButton(ref.title or ref.chat_id, callback_data=f"{OFFER_PREFIX}:{ref.chat_id}")]
        for ref in groups
    ]
    rows.append([InlineKeyboardButton(texts.OFFER_ONLY_ME, callback_data=f"{OFFER_PREFIX}:{user.id}")])
    text = texts.OFFER_CHOOSE if groups else texts.OFFER_NO_GROUPS
    await message.reply_text(
        text.format(name=texts.html(sticker.set_name)),
        parse_mode=texts.PARSE_MODE,
        reply_markup=InlineKeyboardMarkup(rows),
        do_quote=True,
    )


async def offer_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    offer = query.message if isinstance(query.message, Message) else None
    source = offer.reply_to_message if offer is not None else None
    set_name = source.sticker.set_name if source is not None and source.sticker is not None else None
    try:
        target_id = int((query.data or "").partition(":")[2])
    except ValueError:
        target_id = 0
    if offer is None or not set_name or not target_id:
        await query.answer(texts.OFFER_GONE, show_alert=True)
        return
    d = deps(context)
    user = query.from_user
    if not await admin_checked(d.admins.is_admin(context.bot, target_id, user.id), _alert(query)):
        return
    if already_importing(d, set_name):
        await query.answer(texts.plain(texts.ALREADY_IMPORTING.format(name=texts.html(set_name))))
        return
    await query.answer()
    await offer.edit_text(texts.LOOKING_UP.format(name=texts.html(set_name)), parse_mode=texts.PARSE_MODE)
    announce = None
    if target_id != user.id:
        who = texts.html(user.full_name)

        async def announce(title: str) -> object:
            return await context.bot.send_message(
                target_id,
                texts.PACK_ANNOUNCED.format(who=who, title=texts.html(title)),
                parse_mode=texts.PARSE_MODE,
            )

    target = ChatRef(PLATFORM, str(target_id))
    start_import(context, target, set_name, user_ref(user), offer, announce)


# ------------------------------------------------------------------ the group's own set
async def ensure_group_set(context: ContextTypes.DEFAULT_TYPE, chat: Chat, force: bool = False) -> None:
    """Add a group's own sticker set (getChat → sticker_set_name). Checked once per chat and process; only a
    set the library has never seen is added then (an admin may have removed it here on purpose), while
    ``force`` (the bot was just added to the group) always adds and enables it."""
    d = deps(context)
    if not is_group(chat) or (not force and chat.id in d.group_sets_checked):
        return
    d.group_sets_checked.add(chat.id)
    try:
        full = await context.bot.get_chat(chat.id)
    except TelegramError as exc:
        log.info("getChat %s failed: %s", chat.id, describe(exc))
        return
    name = full.sticker_set_name
    if not name or already_importing(d, name):
        return
    if not force and await d.service.has_pack(name, PLATFORM):
        return
    status = await context.bot.send_message(
        chat.id, texts.GROUP_SET_ANNOUNCE.format(title=texts.html(name)), parse_mode=texts.PARSE_MODE
    )
    start_import(context, chat_ref(chat), name, None, status)


def handlers() -> list[BaseHandler]:
    only_messages = filters.UpdateType.MESSAGE
    return [
        CommandHandler("addpack", addpack_command, filters=only_messages),
        CommandHandler("packs", packs_command, filters=only_messages),
        CommandHandler("removepack", removepack_command, filters=only_messages),
        CallbackQueryHandler(removepack_button, pattern=rf"^{REMOVE_PREFIX}:"),
        CallbackQueryHandler(offer_button, pattern=rf"^{OFFER_PREFIX}:-?\d+$"),
        MessageHandler(filters.ChatType.PRIVATE & filters.Sticker.ALL & only_messages, private_sticker),
    ]
