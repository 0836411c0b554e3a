"""Operating an installation: `stickerpick setup` (one-time set-up) and `stickerpick db …` (the schema)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from bot.cli._common import console, fail, load, progress_bar, safe_url, start_service
from engine.settings import Settings

db_app = typer.Typer(no_args_is_help=True, help="Database schema (Alembic migrations).")


def setup(
    rebuild: Annotated[
        bool, typer.Option(help="Rebuild the baseline model (if used) and default pack")
    ] = False,
    baseline: Annotated[
        bool, typer.Option("--baseline", help="Also build the text baseline model (needs the train extra)")
    ] = False,
) -> None:
    """One-time set-up: database schema, the default pack, and the text baseline only if it is needed.

    The baseline is built (with PyTorch) when it is the model to serve, i.e. no trained model, or with
    --baseline."""
    from migrations import run_upgrade

    settings = load(Settings)
    run_upgrade(settings.db_url)
    console.print(f"database ready: {safe_url(settings.db_url)}")
    _baseline(settings, rebuild=rebuild, wanted=baseline)
    pack_dir = _default_pack(settings, rebuild=rebuild)

    async def go() -> None:
        service = await start_service(settings)
        try:
            progress, update = progress_bar("indexing the default pack")
            with progress:
                report = await service.import_pack(pack_dir, name="noto-emoji", progress=update)
            console.print(f"pack noto-emoji: {report.added} added, {report.unchanged} already indexed")
        finally:
            await service.close()

    asyncio.run(go())


def _baseline(settings: Settings, *, rebuild: bool, wanted: bool) -> None:
    """Build the text baseline when asked to, or when it is the model to serve and missing (or rebuilt)."""
    baseline_dir = settings.baseline_model_dir
    have_baseline = (baseline_dir / "manifest.json").is_file()
    serves_baseline = settings.serving_model_dir() == baseline_dir
    if not (wanted or (serves_baseline and (rebuild or not have_baseline))):
        console.print(f"model: {settings.serving_model_dir()}", soft_wrap=True, highlight=False)
        return
    try:
        from export.baseline import export_text_baseline
    except ImportError as exc:  # a serving install: no torch
        fail(f"Building the text baseline needs PyTorch ({exc}): pip install 'stickerpick[train]'.")
    console.print("exporting all-MiniLM-L6-v2 to ONNX (int8) …")
    manifest = export_text_baseline(baseline_dir)
    console.print(f"baseline model {manifest['version']} → {baseline_dir}")


def _default_pack(settings: Settings, *, rebuild: bool) -> Path:
    """The default pack's folder: the one shipped in the wheel, else built from the npm-installed artwork.

    Building it needs ``training.data.emoji_art`` (a checkout's tool, imported only here): an installed
    wheel ships the pack pre-built and never gets this far unless asked to --rebuild."""
    pack_dir = settings.home / "packs" / "noto-emoji"
    bundled = settings.bundled_pack_dir
    if bundled is not None and not rebuild:
        return bundled  # shipped in the package: nothing to build, no npm
    if rebuild or not (pack_dir / "pack.json").is_file():
        from training.data.emoji_art import write_default_pack

        try:
            write_default_pack(pack_dir, style="google", node_modules=settings.vendor_dir)
        except FileNotFoundError as exc:
            fail(
                f"{exc}\nThe emoji artwork installs from npm: `npm ci --prefix vendor` (dev.sh setup does it)."
            )
        console.print(f"default pack written to {pack_dir}")
    return pack_dir


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Create or migrate the database schema to REVISION (default: the newest)."""
    from migrations import run_upgrade

    settings = load(Settings)
    run_upgrade(settings.db_url, revision)
    console.print(f"database at {revision}: {safe_url(settings.db_url)}")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base")]) -> None:
    """Migrate the schema down to REVISION."""
    from migrations import run_downgrade

    settings = load(Settings)
    run_downgrade(settings.db_url, revision)
    console.print(f"database at {revision}: {safe_url(settings.db_url)}")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the database and the one this version needs."""
    from engine.db import create_engine, current_revision, head_revision

    settings = load(Settings)

    async def go() -> str | None:
        engine = create_engine(settings.db_url)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    console.print(f"current: {asyncio.run(go())}  needed: {head_revision()}")
