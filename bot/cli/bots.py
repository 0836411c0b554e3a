"""The adapters, run from the command line: `stickerpick chat` and `demo` (the console), `telegram` and
`discord` (the bots). Each platform's library is imported only by its own command."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli._common import chat_name, console, fail, load, start_service
from bot.discord.settings import DiscordSettings
from bot.telegram.settings import TelegramSettings
from engine.settings import Settings

if TYPE_CHECKING:
    from bot.console import ConsoleChat
    from engine.service import StickerService


def _console_chat(service: StickerService, chat: str, out: Path | None, settings: Settings) -> ConsoleChat:
    from bot.console import ConsoleChat

    return ConsoleChat(service, chat_name=chat, out_dir=out or settings.home / "out")


def chat(
    name: Annotated[
        str,
        typer.Option("--chat", help="Console chat name (its own history and packs)", callback=chat_name),
    ] = "local",
    speaker: Annotated[str, typer.Option("--as", help="Who you are typing as")] = "you",
    k: Annotated[int | None, typer.Option(help="Stickers per /sticker")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for contact-sheet PNGs")] = None,
    cooldown: Annotated[
        bool,
        typer.Option(help="The pause between two /sticker that group chats have (/cooldown off in the chat)"),
    ] = True,
) -> None:
    """A small REPL: type as named users (`alice: hi`), `/sticker` shows the best stickers, `/help` the rest."""
    from engine.preprocess import printable

    settings = load(Settings)

    async def go() -> None:
        service = await start_service(settings)
        repl = _console_chat(service, name, out, settings)
        repl.speaker, repl.k, repl.cooldown = speaker, k, cooldown
        console.print(f"stickerpick console · chat '{name}' · model {service.ranker.version} · /help, /quit")
        try:
            while True:
                try:
                    line = await asyncio.to_thread(input, f"{repl.speaker}> ")
                except EOFError:
                    break
                if line.strip() in ("/quit", "/exit"):
                    break
                for out_line in await repl.handle(line):
                    console.print(printable(out_line), markup=False, highlight=False)
        finally:
            await service.close()

    asyncio.run(go())


def demo(
    out: Annotated[Path | None, typer.Option(help="Folder for contact-sheet PNGs")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write every answer with the raw model scores here")
    ] = None,
) -> None:
    """A short scripted group conversation through the console adapter: what a user would see."""
    settings = load(Settings)
    answers: list[dict[str, object]] = []

    async def go() -> list[str]:
        from bot.console import result_json, run_demo

        service = await start_service(settings)
        try:
            repl = _console_chat(service, "demo", out, settings)
            console.print(f"model: {service.ranker.name} ({service.ranker.version})\n")
            printed = await run_demo(repl)
            answers.extend(result_json(r) for r in repl.results)
            return printed
        finally:
            await service.close()

    for line in asyncio.run(go()):
        console.print(line, markup=False)
    if json_out is not None:
        import json

        json_out.write_text(json.dumps(answers, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def telegram() -> None:
    """Run the Telegram bot (token from TELEGRAM_BOT_TOKEN; polling, or a webhook when configured)."""
    from bot.telegram import run

    settings = load(TelegramSettings)
    if settings.telegram_token is None:
        fail("Set TELEGRAM_BOT_TOKEN (environment or .env) to the token BotFather gave you.")
    run(settings)


def discord(
    sync_commands: Annotated[
        bool,
        typer.Option(
            "--sync-commands",
            help="Send the slash commands to Discord at this start even if they look unchanged (normally "
            "they are synced only when they changed, and not at all with STICKERPICK_DISCORD_SYNC_COMMANDS=false)",
        ),
    ] = False,
) -> None:
    """Run the Discord bot (token from DISCORD_BOT_TOKEN)."""
    from bot.discord import run
    from bot.discord._bot import forget_synced_commands

    settings = load(DiscordSettings)
    if settings.discord_token is None:
        fail("Set DISCORD_BOT_TOKEN (environment or .env) to your application's bot token.")
    if sync_commands:
        settings.discord_sync_commands = True
        forget_synced_commands(settings)
    run(settings)
