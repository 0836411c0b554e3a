"""`stickerpick data …`: the dataset commands of ``training.data.cli`` (convert public corpora, build the
default pack), mounted when the training extras are installed, plus `data export` (chat logs → dataset)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.cli._common import console, fail, load, start_service
from engine.settings import Settings


async def export_logs(
    settings: Settings,
    out_dir: Path,
    *,
    since: str | None,
    chats: list[str],
    overwrite: bool,
    salt: bytes | None,
    val_fraction: float,
) -> dict[str, Any]:
    """The logged samples of the chats with logging on, as a dataset (shared with `stickerpick retrain`);
    ``salt`` and ``val_fraction`` are retraining's settings (``retraining.settings``, read by the command)."""
    from datetime import UTC, datetime

    from training.chatlogs import export_from_service

    when = datetime.fromisoformat(since) if since else None
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    service = await start_service(settings)
    try:
        info: dict[str, Any] = await export_from_service(
            service,
            out_dir,
            since=when,
            chats=chats,
            salt=salt,
            val_fraction=val_fraction,
            overwrite=overwrite,
        )
        return info
    finally:
        await service.close()


def data_export_cmd(
    out_dir: Annotated[Path, typer.Argument(help="The dataset folder to write (docs/FORMAT.md)")],
    since: Annotated[
        str | None, typer.Option(help="Only samples from this date on (ISO, e.g. 2026-01-31)")
    ] = None,
    chats: Annotated[
        list[str] | None,
        typer.Option("--chats", help="Only these chats: platform:chat_id or chat_id (repeat)"),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace OUT_DIR if it is a previous export (it carries .stickerpick-export)")
    ] = False,
) -> None:
    """Export the logged samples of chats with logging on (user ids hashed, split by time into train/val).
    --overwrite replaces only a previous export (never the home, the media store or a folder holding them)."""
    from retraining.settings import RetrainSettings
    from training.chatlogs import ExportRefused

    settings = load(RetrainSettings)
    try:
        info = asyncio.run(
            export_logs(
                settings,
                out_dir,
                since=since,
                chats=chats or [],
                overwrite=overwrite,
                salt=settings.hash_salt(),
                val_fraction=settings.retrain_val_fraction,
            )
        )
    except ExportRefused as exc:
        fail(str(exc))
    console.print(
        f"{info['samples']} samples from {info['chats']} chats, {info['stickers']} stickers → {out_dir}"
    )


def mount(app: typer.Typer) -> None:
    """Add `stickerpick data …` to ``app`` when the training extras are installed (their modules import
    torch only inside their commands); a serving install has no `data` commands."""
    try:
        from training.data.cli import app as data_app
    except ImportError:  # the training extras are not installed
        return
    data_app.command("export")(data_export_cmd)  # chat logs → dataset
    app.add_typer(data_app, name="data", help="Datasets: convert public corpora to the sticker format.")
