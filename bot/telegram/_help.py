"""`/help` and `/start`: what the bot does, every command, and what it keeps (privacy)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CommandHandler, ContextTypes, filters

from bot.telegram import _texts as texts
from bot.telegram._context import deps, message_and_chat


def help_text(context: ContextTypes.DEFAULT_TYPE) -> str:
    settings = deps(context).settings
    return texts.HELP.format(
        bot=texts.html(context.bot.username),
        k=settings.top_k,
        days=settings.retention_days,
        messages=settings.retention_messages,
    )


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, _ = message_and_chat(update)
    await message.reply_text(help_text(context), parse_mode=texts.PARSE_MODE, do_quote=True)


async def start_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, chat = message_and_chat(update)
    intro = texts.START_PRIVATE if chat.type == chat.PRIVATE else ""
    await message.reply_text(intro + help_text(context), parse_mode=texts.PARSE_MODE)


def handlers() -> list[BaseHandler]:
    only_messages = filters.UpdateType.MESSAGE
    return [
        CommandHandler("help", help_command, filters=only_messages),
        CommandHandler("start", start_command, filters=only_messages),
    ]
