"""`stickerpick`: the one console script. The composition root: it reads each layer's settings, builds the
service, and imports training, export and retraining lazily inside the commands that need them, so serving
never loads torch.

One module per area: ``packs`` (`packs …`), ``ops`` (`setup`, `db …`), ``bots`` (`chat`, `demo`,
`telegram`, `discord`), ``models`` (`train`, `ablate`, `export`, `verify`, `eval`, `retrain`, `model …`),
``data`` (`data …`); ``_common`` holds what they share. This module holds the Typer app and says which
command is which (in the order `stickerpick --help` lists them), runs before every command (configuration,
logging) and turns an unexpected error into one line (:func:`main`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated

import typer

from bot.cli import bots, data, models, ops, packs
from bot.cli._common import check_configuration, console, err, report_settings_error
from bot.settings import BotSettings
from engine.settings import Settings, SettingsError

__all__ = ["app", "explain", "main"]

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="stickerpick: answers /sticker with the stickers from the chat's own packs that fit the conversation.",
    pretty_exceptions_show_locals=False,  # locals hold settings, message text: never printed
)
# Every top-level command, in the order `stickerpick --help` lists them; the groups (`packs …` etc.) follow.
COMMANDS: dict[str, Callable[..., None]] = {
    "setup": ops.setup,
    "chat": bots.chat,
    "demo": bots.demo,
    "telegram": bots.telegram,
    "discord": bots.discord,
    "export": models.export_cmd,
    "verify": models.verify_cmd,
    "eval": models.eval_cmd,
    "train": models.train_cmd,
    "ablate": models.ablate_cmd,
    "retrain": models.retrain_cmd,
}
for _name, _command in COMMANDS.items():
    app.command(_name)(_command)
app.add_typer(packs.packs_app, name="packs")
app.add_typer(ops.db_app, name="db")
app.add_typer(models.model_app, name="model")
data.mount(app)  # `data …`, when the training extras are installed

_debug = False  # `stickerpick --debug …` or STICKERPICK_LOG_LEVEL=DEBUG: tracebacks instead of one line


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stickerpick")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        console.print(f"stickerpick {_version()}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also show library logs, debug logs and warnings")
    ] = False,
    _version_flag: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version and exit"),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show the full traceback of an unexpected error (and log at DEBUG)"),
    ] = False,
) -> None:
    """Runs before every command: check the configuration (one line per bad setting), set up logging."""
    from bot.logs import configure_logging

    try:
        settings = check_configuration()
    except SettingsError as exc:
        report_settings_error(exc)
    global _debug
    _debug = _debug or debug or settings.log_level.upper() == "DEBUG"
    configure_logging(
        "DEBUG" if debug else settings.log_level, verbose=verbose or debug, fmt=settings.log_format
    )


def explain(exc: BaseException, settings: Settings | None) -> str:
    """One line for an operator: what is wrong and what to do. Never a token or message text."""
    import errno

    from sqlalchemy.exc import DBAPIError

    from bot.operator_texts import startup_error
    from bot.redaction import describe
    from engine.errors import ModelMissing, SchemaOutOfDate

    home = str(settings.home) if settings is not None else "STICKERPICK_HOME"
    media = str(settings.media_dir) if settings is not None else "the media store"
    if isinstance(exc, ModelMissing | SchemaOutOfDate):
        return startup_error(exc)
    if isinstance(exc, DBAPIError):
        reason = str(exc.orig).strip().splitlines()[0][:200] if exc.orig is not None else type(exc).__name__
        low = reason.lower()
        if "full" in low:
            return (
                f"the disk is full ({reason}): free space where the database lives ({home}), then run again"
            )
        if "readonly" in low or "read-only" in low or "unable to open" in low:
            return (
                f"the database cannot be opened for writing ({reason}): make {home} and its files writable "
                "by this user, or set STICKERPICK_HOME (or DATABASE_URL) to a writable place"
            )
        if "locked" in low:
            return f"the database is busy ({reason}): another stickerpick process holds it; try again"
        return f"the database refused the operation ({reason})"
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return f"no space left to write{where} ({exc.strerror}): free space on that disk, then run again"
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return (
                f"cannot write{where} ({exc.strerror}): make {home} writable by this user, or set "
                "STICKERPICK_HOME to a writable folder"
            )
        if exc.errno == errno.ENOENT and exc.filename and str(exc.filename).startswith(media):
            return (
                f"a picture of the media store is missing ({exc.filename}): {media} was moved or deleted. "
                "Restore it, or remove the packs and import them again (`stickerpick packs add`)"
            )
        return f"{exc.strerror or type(exc).__name__}{':' if where else ''}{where}"
    if isinstance(exc, UnicodeError):
        return "an argument, file name or setting is not valid UTF-8 text; use UTF-8 names and values"
    if isinstance(exc, MemoryError):
        return "out of memory"
    return f"unexpected error: {describe(exc)}"


def main() -> None:
    global _debug
    try:
        settings: BotSettings | None = BotSettings.load()
    except SettingsError:
        settings = None  # the root callback reports it, one line per setting
    _debug = _debug or (settings is not None and settings.log_level.upper() == "DEBUG")
    try:
        code = app()  # logging is set up by _root, before every command
    except Exception as exc:  # one clear line unless --debug / STICKERPICK_LOG_LEVEL=DEBUG
        if _debug:
            raise
        from rich.markup import escape

        from engine.preprocess import printable

        err.print(
            f"[red]error:[/red] {escape(printable(explain(exc, settings)))} "
            "[dim](--debug or STICKERPICK_LOG_LEVEL=DEBUG shows the traceback)[/dim]",
            soft_wrap=True,
            highlight=False,
        )
        sys.exit(1)
    sys.exit(code)
