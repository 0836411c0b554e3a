"""`stickerpick packs …`: import a pack into the library, list the packs, remove one (or stop using it in a
chat)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from bot.cli._common import chat_name, console, fail, load, progress_bar, start_service
from engine.settings import Settings

if TYPE_CHECKING:
    from engine.service import ChatRef, PackInfo

packs_app = typer.Typer(no_args_is_help=True, help="Sticker packs: import, list, remove.")

CHAT_HELP = "a console chat name, telegram:CHAT_ID (a group's id) or discord:SERVER_ID"


def chat_ref(spec: str) -> ChatRef:
    """``--chat``: a console chat by name, ``telegram:-100123`` (a Telegram chat) or ``discord:123`` (a
    Discord server: its packs serve every channel)."""
    from engine.service import ChatRef

    platform, sep, ident = spec.partition(":")
    if not sep:
        return ChatRef("console", spec)
    if platform == "telegram" and ident.lstrip("-").isdigit():
        return ChatRef("telegram", ident)
    if platform == "discord" and ident.isdigit():
        return ChatRef("discord", f"guild-{ident}")
    fail(f"--chat {spec}: expected {CHAT_HELP}")


def resume_hint(pack: PackInfo) -> str | None:
    """For a pack whose import is unfinished: how to finish it (None for a ready pack). A local pack: the
    `packs add` that imported it, run again; a platform's set: added again from its bot."""
    if not pack.unfinished:
        return None
    if pack.platform == "local":
        import shlex

        src = shlex.quote(pack.source) if pack.source else "PATH"
        return f"run `stickerpick packs add {src} --name {pack.name}` again to finish it"
    return "add the set again to finish it"


@packs_app.command("add")
def packs_add(
    path: Annotated[Path, typer.Argument(help="A folder or .zip of images (png, webp, jpg, gif, tgs, webm)")],
    name: Annotated[str | None, typer.Option(help="Pack name (default: pack.json's or the folder's)")] = None,
    title: Annotated[str | None, typer.Option(help="Display title")] = None,
    chat: Annotated[
        str | None, typer.Option(help=f"Also enable it in this chat: {CHAT_HELP}", callback=chat_name)
    ] = None,
) -> None:
    """Import a pack into the library; its stickers are decoded and embedded once."""
    from rich.markup import escape

    from engine.library import PackError
    from engine.preprocess import printable

    target = chat_ref(chat) if chat else None

    async def go() -> None:
        service = await start_service(load(Settings))
        try:
            progress, update = progress_bar(f"importing {path.name}")
            with progress:
                report = await service.import_pack(path, name=name, title=title, progress=update)
            if target is not None:
                await service.enable_pack(target, report.pack_name)
        finally:
            await service.close()
        console.print(
            f"pack [bold]{report.pack_name}[/bold]: {report.added} added, {report.unchanged} unchanged"
        )
        for f, why in report.skipped:  # names from the pack: escaped (control characters, rich markup)
            console.print(
                f"  [yellow]skipped[/yellow] {escape(printable(f))}: {escape(printable(str(why)))}",
                highlight=False,
            )

    try:
        asyncio.run(go())
    except PackError as exc:
        fail(str(exc))


@packs_app.command("list")
def packs_list(
    chat: Annotated[
        str | None, typer.Option(help=f"Only packs enabled in this chat: {CHAT_HELP}", callback=chat_name)
    ] = None,
) -> None:
    """List the packs in the library (or in one chat)."""
    from rich.markup import escape

    target = chat_ref(chat) if chat else None

    async def go() -> list[PackInfo]:
        service = await start_service(load(Settings))
        try:
            return await service.list_packs(target)
        finally:
            await service.close()

    packs = asyncio.run(go())
    table = Table("name", "title", "platform", "stickers", "status")
    for p in packs:
        status = f"{p.status} (not served)" if p.unfinished else p.status
        table.add_row(escape(p.name), escape(p.title or ""), p.platform, str(p.stickers), status)
    console.print(table if packs else "no packs yet: `stickerpick packs add PATH`")
    for p in packs:  # an import still running, or interrupted (killed): running it again resumes it
        hint = resume_hint(p)
        if hint is not None:  # below the table: a command is never broken in two
            console.print(
                f"[yellow]{escape(p.name)}[/yellow] is {p.status} (interrupted?): {escape(hint)}",
                soft_wrap=True,
                highlight=False,
            )


@packs_app.command("remove")
def packs_remove(
    name: str,
    chat: Annotated[
        str | None, typer.Option(help=f"Only stop using it in this chat: {CHAT_HELP}", callback=chat_name)
    ] = None,
) -> None:
    """Remove a pack from the library (and every chat), or with --chat only from one chat."""
    from engine.library import PackError

    target = chat_ref(chat) if chat else None

    async def go() -> str:
        service = await start_service(load(Settings))
        try:
            if target is not None:
                await service.remove_pack(target, name)
                return f"{name} removed from chat {chat}"
            n = await service.delete_pack(name)
            return f"{name} deleted ({n} stickers)"
        finally:
            await service.close()

    try:
        console.print(asyncio.run(go()))
    except PackError as exc:
        fail(str(exc))
