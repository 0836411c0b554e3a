"""What every command module of the CLI shares: the consoles, settings, errors, the service."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bot.discord.settings import DiscordSettings
from bot.settings import BotSettings
from bot.telegram.settings import TelegramSettings
from engine.settings import Settings, SettingsError

if TYPE_CHECKING:
    from engine.service import StickerService

console = Console()
err = Console(stderr=True)

S = TypeVar("S", bound=Settings)


def report_settings_error(exc: SettingsError) -> NoReturn:
    """One line per bad setting, then where settings come from; exit status 2 (a usage error)."""
    from rich.markup import escape

    for line in str(exc).splitlines():  # values may hold brackets: not markup
        err.print(f"[red]error:[/red] {escape(line)}", soft_wrap=True, highlight=False)
    err.print("(set in the environment or the .env file; see .env.example)", highlight=False)
    raise typer.Exit(2)


def load(layer: type[S]) -> S:
    """The settings of one layer, read once for the command that needs them; a bad value is reported as at
    start-up (one line each), never as a traceback."""
    try:
        return layer.load()
    except SettingsError as exc:
        report_settings_error(exc)


def check_configuration() -> BotSettings:
    """Every setting a bot-side command reads (the engine's, the bot's, Telegram's and Discord's), checked
    before any command runs, so a typo anywhere is one line per setting even for `stickerpick db current`.
    Retraining's settings are checked by the commands that read them: loading them here would import
    ``retraining`` for every command."""
    problems: list[str] = []
    for layer in (TelegramSettings, DiscordSettings):
        try:
            layer.load()
        except SettingsError as exc:  # the engine's and the bot's fields are in both: each line once
            problems += [line for line in str(exc).splitlines() if line not in problems]
    if problems:
        raise SettingsError("\n".join(problems))
    return BotSettings.load()


def fail(message: str, code: int = 1) -> NoReturn:
    from rich.markup import escape

    from engine.preprocess import printable

    # never break a path or a command in two; text from outside (a pack's file names) is shown, not obeyed
    shown = "\n".join(printable(line) for line in str(message).split("\n"))
    err.print(f"[red]error:[/red] {escape(shown)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def progress_bar(description: str) -> tuple[Progress, Callable[[int, int], None]]:
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )
    task = progress.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return progress, update


async def start_service(settings: Settings) -> StickerService:
    """The engine's service; an out-of-date schema or a missing model is one line (what to run), not a
    traceback."""
    from bot.operator_texts import startup_error
    from engine.errors import ModelMissing, SchemaOutOfDate
    from engine.service import open_service

    try:
        return await open_service(settings)
    except (SchemaOutOfDate, ModelMissing) as exc:
        fail(startup_error(exc))


def chat_name(value: str | None) -> str | None:
    """A console chat name given on the command line: printable UTF-8 text of at most 64 characters."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise typer.BadParameter(
            "the name is not valid UTF-8 text; use letters, digits, '-' or '_'"
        ) from None
    if not value.strip() or len(value) > 64 or not value.isprintable():
        raise typer.BadParameter("use 1 to 64 printable characters, e.g. letters, digits, '-' or '_'")
    return value


def safe_url(url: str) -> str:
    """A database URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
