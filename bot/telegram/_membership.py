"""The bot's own membership: added to a group → a welcome (with a privacy-mode warning when it cannot read
the conversation) and the group's own sticker set; any change → the chat's cached admin list is dropped."""

from __future__ import annotations

from telegram import ChatMember, ChatMemberAdministrator, Update
from telegram.ext import BaseHandler, ChatMemberHandler, ContextTypes

from bot.telegram import _texts as texts
from bot.telegram._context import deps, is_group
from bot.telegram._packs import ensure_group_set

PRESENT = (ChatMember.MEMBER, ChatMember.ADMINISTRATOR, ChatMember.OWNER)
ABSENT = (ChatMember.LEFT, ChatMember.BANNED)


async def bot_membership(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    change = update.my_chat_member
    assert change is not None
    chat = change.chat
    deps(context).admins.invalidate(chat.id)
    if not is_group(chat):
        return
    old, new = change.old_chat_member.status, change.new_chat_member.status
    if old in ABSENT and new in PRESENT:
        can_read = context.bot.can_read_all_group_messages or isinstance(
            change.new_chat_member, ChatMemberAdministrator
        )
        note = "" if can_read else "\n" + texts.PRIVACY_NOTE
        await context.bot.send_message(
            chat.id, texts.WELCOME_GROUP.format(privacy_note=note).strip(), parse_mode=texts.PARSE_MODE
        )
        await ensure_group_set(context, chat, force=True)


def handlers() -> list[BaseHandler]:
    return [ChatMemberHandler(bot_membership, ChatMemberHandler.MY_CHAT_MEMBER)]
