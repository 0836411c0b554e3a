"""`stickerpick`: the one console script. The composition root: it builds settings and the service, and
imports training/export code lazily inside the commands that need them, so serving never loads torch."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="stickerpick: answers /sticker with the stickers from the chat's own packs that fit the conversation.",
    pretty_exceptions_show_locals=False,  # locals hold settings, message text: never printed
)
packs_app = typer.Typer(no_args_is_help=True, help="Sticker packs: import, list, remove.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema (Alembic migrations).")
app.add_typer(packs_app, name="packs")
app.add_typer(db_app, name="db")

console = Console()
err = Console(stderr=True)


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
    from rich.markup import escape

    from bot.logs import configure_logging

    try:
        settings = load_settings()
    except SettingsError as exc:
        for line in str(exc).splitlines():  # values may hold brackets: not markup
            err.print(f"[red]error:[/red] {escape(line)}", soft_wrap=True, highlight=False)
        err.print("(set in the environment or the .env file; see .env.example)", highlight=False)
        raise typer.Exit(2) from None
    global _debug
    _debug = _debug or debug or settings.log_level.upper() == "DEBUG"
    configure_logging(
        "DEBUG" if debug else settings.log_level, verbose=verbose or debug, fmt=settings.log_format
    )


def _chat_name(value: str | None) -> str | None:
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


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def _fail(message: str, code: int = 1) -> NoReturn:
    from rich.markup import escape

    from engine.preprocess import printable

    # never break a path or a command in two; text from outside (a pack's file names) is shown, not obeyed
    shown = "\n".join(printable(line) for line in str(message).split("\n"))
    err.print(f"[red]error:[/red] {escape(shown)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def _progress_bar(description: str) -> tuple[Progress, Callable[[int, int], None]]:
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )
    task = progress.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return progress, update


async def _service(settings: Settings):  # -> StickerService
    from engine.db import SchemaOutOfDate
    from engine.ranking import ModelMissing
    from engine.service import open_service

    try:
        return await open_service(settings)
    except (SchemaOutOfDate, ModelMissing) as exc:
        _fail(str(exc))


# ---------------------------------------------------------------------------------------------- db
@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Create or migrate the database schema to REVISION (default: the newest)."""
    from migrations import run_upgrade

    settings = Settings()
    run_upgrade(settings.db_url, revision)
    console.print(f"database at {revision}: {_safe_url(settings.db_url)}")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base")]) -> None:
    """Migrate the schema down to REVISION."""
    from migrations import run_downgrade

    settings = Settings()
    run_downgrade(settings.db_url, revision)
    console.print(f"database at {revision}: {_safe_url(settings.db_url)}")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the database and the one this version needs."""
    from engine.db import create_engine, current_revision, head_revision

    async def go() -> str | None:
        engine = create_engine(Settings().db_url)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    console.print(f"current: {_run(go())}  needed: {head_revision()}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# ---------------------------------------------------------------------------------------------- packs
CHAT_HELP = "a console chat name, telegram:CHAT_ID (a group's id) or discord:SERVER_ID"


def _chat_ref(spec: str):  # -> ChatRef
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
    _fail(f"--chat {spec}: expected {CHAT_HELP}")


@packs_app.command("add")
def packs_add(
    path: Annotated[Path, typer.Argument(help="A folder or .zip of images (png, webp, jpg, gif, tgs, webm)")],
    name: Annotated[str | None, typer.Option(help="Pack name (default: pack.json's or the folder's)")] = None,
    title: Annotated[str | None, typer.Option(help="Display title")] = None,
    chat: Annotated[
        str | None, typer.Option(help=f"Also enable it in this chat: {CHAT_HELP}", callback=_chat_name)
    ] = None,
) -> None:
    """Import a pack into the library; its stickers are decoded and embedded once."""
    from rich.markup import escape

    from engine.library import PackError
    from engine.preprocess import printable

    target = _chat_ref(chat) if chat else None

    async def go() -> None:
        service = await _service(Settings())
        try:
            progress, update = _progress_bar(f"importing {path.name}")
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
                f"  [yellow]skipped[/yellow] {escape(printable(f))}: {escape(printable(why))}",
                highlight=False,
            )

    try:
        _run(go())
    except PackError as exc:
        _fail(str(exc))


@packs_app.command("list")
def packs_list(
    chat: Annotated[
        str | None, typer.Option(help=f"Only packs enabled in this chat: {CHAT_HELP}", callback=_chat_name)
    ] = None,
) -> None:
    """List the packs in the library (or in one chat)."""
    from rich.markup import escape

    target = _chat_ref(chat) if chat else None

    async def go():
        service = await _service(Settings())
        try:
            return await service.list_packs(target)
        finally:
            await service.close()

    packs = _run(go())
    table = Table("name", "title", "platform", "stickers", "status")
    for p in packs:
        status = p.status if p.resume_hint is None else f"{p.status} (not served)"
        table.add_row(escape(p.name), escape(p.title or ""), p.platform, str(p.stickers), status)
    console.print(table if packs else "no packs yet: `stickerpick packs add PATH`")
    for p in packs:  # an import still running, or interrupted (killed): running it again resumes it
        if p.resume_hint is not None:  # below the table: a command is never broken in two
            console.print(
                f"[yellow]{escape(p.name)}[/yellow] is {p.status} (interrupted?): {escape(p.resume_hint)}",
                soft_wrap=True,
                highlight=False,
            )


@packs_app.command("remove")
def packs_remove(
    name: str,
    chat: Annotated[
        str | None, typer.Option(help=f"Only stop using it in this chat: {CHAT_HELP}", callback=_chat_name)
    ] = None,
) -> None:
    """Remove a pack from the library (and every chat), or with --chat only from one chat."""
    from engine.library import PackError

    target = _chat_ref(chat) if chat else None

    async def go() -> str:
        service = await _service(Settings())
        try:
            if target is not None:
                await service.remove_pack(target, name)
                return f"{name} removed from chat {chat}"
            n = await service.delete_pack(name)
            return f"{name} deleted ({n} stickers)"
        finally:
            await service.close()

    try:
        console.print(_run(go()))
    except PackError as exc:
        _fail(str(exc))


# ---------------------------------------------------------------------------------------------- setup
@app.command()
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

    settings = Settings()
    run_upgrade(settings.db_url)
    console.print(f"database ready: {_safe_url(settings.db_url)}")

    baseline_dir = settings.baseline_model_dir
    have_baseline = (baseline_dir / "manifest.json").is_file()
    serves_baseline = settings.serving_model_dir() == baseline_dir
    if baseline or (serves_baseline and (rebuild or not have_baseline)):
        try:
            from export.baseline import export_text_baseline
        except ImportError as exc:  # a serving install: no torch
            _fail(f"Building the text baseline needs PyTorch ({exc}): pip install 'stickerpick[train]'.")
        console.print("exporting all-MiniLM-L6-v2 to ONNX (int8) …")
        manifest = export_text_baseline(baseline_dir)
        console.print(f"baseline model {manifest['version']} → {baseline_dir}")
    else:
        console.print(f"model: {settings.serving_model_dir()}", soft_wrap=True, highlight=False)

    pack_dir = settings.home / "packs" / "noto-emoji"
    bundled = settings.bundled_pack_dir
    if bundled is not None and not rebuild:
        pack_dir = bundled  # shipped in the package: nothing to build, no npm
    elif rebuild or not (pack_dir / "pack.json").is_file():
        from training.data.emoji_art import write_default_pack

        try:
            write_default_pack(pack_dir, style="google", node_modules=settings.vendor_dir)
        except FileNotFoundError as exc:
            _fail(
                f"{exc}\nThe emoji artwork installs from npm: `npm ci --prefix vendor` (dev.sh setup does it)."
            )
        console.print(f"default pack written to {pack_dir}")

    async def go() -> None:
        service = await _service(settings)
        try:
            progress, update = _progress_bar("indexing the default pack")
            with progress:
                report = await service.import_pack(pack_dir, name="noto-emoji", progress=update)
            console.print(f"pack noto-emoji: {report.added} added, {report.unchanged} already indexed")
        finally:
            await service.close()

    _run(go())


# ---------------------------------------------------------------------------------------------- chat
def _console_chat(service, chat: str, out: Path | None, settings: Settings):  # -> ConsoleChat
    from bot.console import ConsoleChat

    return ConsoleChat(service, chat_name=chat, out_dir=out or settings.home / "out")


@app.command()
def chat(
    name: Annotated[
        str,
        typer.Option("--chat", help="Console chat name (its own history and packs)", callback=_chat_name),
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

    settings = Settings()

    async def go() -> None:
        service = await _service(settings)
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

    _run(go())


@app.command()
def demo(
    out: Annotated[Path | None, typer.Option(help="Folder for contact-sheet PNGs")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write every answer with the raw model scores here")
    ] = None,
) -> None:
    """A short scripted group conversation through the console adapter: what a user would see."""
    settings = Settings()
    answers: list[dict[str, object]] = []

    async def go() -> list[str]:
        from bot.console import result_json, run_demo

        service = await _service(settings)
        try:
            repl = _console_chat(service, "demo", out, settings)
            console.print(f"model: {service.ranker.name} ({service.ranker.version})\n")
            printed = await run_demo(repl)
            answers.extend(result_json(r) for r in repl.results)
            return printed
        finally:
            await service.close()

    for line in _run(go()):
        console.print(line, markup=False)
    if json_out is not None:
        import json

        json_out.write_text(json.dumps(answers, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------- bots
@app.command()
def telegram() -> None:
    """Run the Telegram bot (token from TELEGRAM_BOT_TOKEN; polling, or a webhook when configured)."""
    from bot.telegram import run

    settings = Settings()
    if settings.telegram_token is None:
        _fail("Set TELEGRAM_BOT_TOKEN (environment or .env) to the token BotFather gave you.")
    run(settings)


@app.command()
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

    settings = Settings()
    if settings.discord_token is None:
        _fail("Set DISCORD_BOT_TOKEN (environment or .env) to your application's bot token.")
    if sync_commands:
        settings.discord_sync_commands = True
        forget_synced_commands(settings)
    run(settings)


# ---------------------------------------------------------------------------------------------- export
@app.command("export")
def export_cmd(
    checkpoint: Annotated[
        str, typer.Argument(help="A PBR checkpoint (.pt), or `baseline` for all-MiniLM-L6-v2")
    ],
    out_dir: Annotated[Path | None, typer.Argument(help="The model directory to write")] = None,
    int8: Annotated[
        bool, typer.Option("--int8/--fp32", help="Dynamic int8 quantisation of the text tower")
    ] = True,
) -> None:
    """Turn a checkpoint into the ONNX model directory the engine serves (manifest, towers, tokenizer)."""
    if checkpoint == "baseline":
        from export.baseline import export_text_baseline

        target = out_dir or Settings().baseline_model_dir
        manifest = export_text_baseline(target, quantize=int8)
    else:
        if out_dir is None:
            _fail("Give the output directory: stickerpick export CHECKPOINT OUT_DIR")
        if not Path(checkpoint).is_file():
            _fail(
                f"No checkpoint at {checkpoint}. `stickerpick train --config configs/pbr-default.yaml` makes one."
            )
        from export.pbr import export_pbr

        target = out_dir
        manifest = export_pbr(Path(checkpoint), target, quantize=int8)
    console.print(f"{manifest['version']} → {target}")


@app.command("verify")
def verify_cmd(
    model_dir: Annotated[Path, typer.Argument(help="A model directory from `stickerpick export`")],
    checkpoint: Annotated[
        Path | None,
        typer.Argument(help="Its checkpoint, for PyTorch parity (default: manifest's, if beside it)"),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="A dataset: real inputs and the int8-vs-fp32 metric change")
    ] = None,
    split: Annotated[str, typer.Option(help="Split of --data")] = "val",
    max_samples: Annotated[int, typer.Option(help="Samples for the metric change")] = 1000,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here")] = None,
) -> None:
    """Check a model directory: every file against its manifest's SHA-256 and a smoke run of each tower (no
    PyTorch needed). Given its checkpoint (or with it beside the model), also the parity of every tower
    against PyTorch (cosine ≥ 0.999 for fp32; int8 drift reported)."""
    import json

    from engine.model_check import check_model_dir
    from engine.ranking import ModelMissing

    try:
        check = check_model_dir(model_dir)
    except ModelMissing as exc:
        _fail(str(exc))
    console.print(f"{model_dir}: {check.kind} model {check.version}", soft_wrap=True, highlight=False)
    table = Table("check", "result")
    for f in check.files:
        table.add_row(f.name, f.detail if f.ok else f"[red]{f.detail}[/red]")
    for tower in check.towers:
        shown = tower.detail if tower.ok else f"[red]{tower.detail}[/red]"
        table.add_row(tower.name, f"{shown} ({tower.seconds:.2f} s)")
    console.print(table)
    if checkpoint is None:
        name = json.loads((model_dir / "manifest.json").read_text()).get("checkpoint", "")
        checkpoint = model_dir / name if name else None
    if checkpoint is None or not checkpoint.is_file():
        if json_out:
            json_out.write_text(json.dumps({"check": check.as_dict()}, indent=2, ensure_ascii=False))
        if not check.ok:
            _fail(f"{model_dir} is damaged or does not run (see above)")
        console.print("model ok (no checkpoint given: PyTorch parity not checked)")
        return
    if not check.ok:
        _fail(f"{model_dir} is damaged or does not run (see above)")
    from export.verify import verify

    report = verify(model_dir, checkpoint, data, split, max_samples)
    table = Table(
        "tower",
        "inputs",
        "min cosine",
        "mean cosine",
        "max |diff|",
        title=f"{model_dir} vs {checkpoint.name}",
    )
    for t in report.towers:
        table.add_row(
            t.name, t.inputs, f"{t.min_cosine:.5f}", f"{t.mean_cosine:.5f}", f"{t.max_abs_diff:.2e}"
        )
    console.print(table)
    for name, m in report.metrics.items():
        console.print(
            f"{name}: " + ", ".join(f"{k} {v:+.2f}" if "−" in name else f"{k} {v:.2f}" for k, v in m.items())
        )
    if json_out:
        out = {"check": check.as_dict(), **report.as_dict()}
        json_out.write_text(json.dumps(out, indent=2, ensure_ascii=False))
    if not report.ok:
        _fail("fp32 export differs from PyTorch (cosine < 0.999)")


# ---------------------------------------------------------------------------------------------- eval
@app.command("eval")
def eval_cmd(
    data: Annotated[Path, typer.Option(help="Dataset folder in the sticker format (docs/FORMAT.md)")],
    split: Annotated[str, typer.Option(help="test | val | train")] = "val",
    model: Annotated[
        str | None,
        typer.Option(
            help="A model directory (ONNX, from `stickerpick export`), a PBR checkpoint (.pt), or one of "
            "`chance`, `logreg` (text-only classifier fitted on the train split). Default: the serving model."
        ),
    ] = None,
    sticker_text: Annotated[
        bool,
        typer.Option("--sticker-text/--no-sticker-text", help="May the ranker read each sticker's emoji?"),
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the metrics here (+ a PNG beside)")
    ] = None,
    predictions: Annotated[Path | None, typer.Option(help="One ranking per line, in input order")] = None,
    max_samples: Annotated[int | None, typer.Option(help="Only the first N samples")] = None,
) -> None:
    """Measure a model on a dataset: R@1/2/5, MRR, macro/weighted-F1 of the top-1 emoji class."""
    from training.data.format import StickerDataset
    from training.evaluate import EngineScorer, RandomScorer, TextLogRegScorer, evaluate

    settings = Settings()
    try:
        dataset = StickerDataset.open(data)
    except FileNotFoundError as exc:
        _fail(f"{exc}. Convert a corpus with `stickerpick data convert ...`.")
    scorer: Any
    if model == "chance":
        scorer = RandomScorer()
    elif model == "logreg":
        from engine.ranking import TextBaselineRanker

        baseline = TextBaselineRanker(settings.baseline_model_dir)
        scorer = TextLogRegScorer(baseline.embed_dialogues, dataset.load("train"))
    elif model is not None and Path(model).is_file():
        from training.pbr_scorer import CheckpointScorer

        scorer = CheckpointScorer.load(Path(model))
    else:
        from engine.ranking import ModelMissing, load_ranker

        model_dir = Path(model) if model else settings.serving_model_dir()
        try:
            scorer = EngineScorer(load_ranker("auto", model_dir, max_turns=settings.history_turns))
        except ModelMissing as exc:
            _fail(str(exc))
    metrics = evaluate(
        dataset,
        split,
        scorer,
        sticker_text=sticker_text,
        max_samples=max_samples,
        json_path=json_out,
        predictions_path=predictions,
    )
    table = Table(
        "metric",
        "value",
        title=f"{scorer.name} on {data.name}/{split} (sticker text {'on' if sticker_text else 'off'})",
    )
    for key in ("R@1", "R@2", "R@5", "MRR", "macro_F1", "weighted_F1", "n"):
        table.add_row(key, f"{metrics[key]:.2f}" if key != "n" else str(int(metrics[key])))
    console.print(table)
    if json_out:
        console.print(f"metrics → {json_out} (confusion matrix: {json_out.with_suffix('.png')})")


# --- training (lazy imports) ---
@app.command("train")
def train_cmd(
    config: Annotated[Path, typer.Option(help="Training config (YAML/JSON), e.g. configs/pbr-default.yaml")],
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config value, e.g. losses.intra_topic.enabled=false (repeat)"),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/last.pt")] = False,
    out: Annotated[str | None, typer.Option(help="Run directory (default: the config's out_dir)")] = None,
) -> None:
    """Train a PBR model (cached frozen-tower features; DDP under torchrun). Writes checkpoints, metrics, plots."""
    from training.train import main as train_main

    argv = ["--config", str(config)]
    for o in overrides or []:
        argv += ["--set", o]
    if resume:
        argv.append("--resume")
    if out:
        argv += ["--out", out]
    summary = train_main(argv)
    console.print(
        f"best mean val R@1 {summary['best'].get('mean_R@1', float('nan')):.2f} → {summary['run_dir']}"
    )


@app.command("ablate")
def ablate_cmd(
    config: Annotated[Path, typer.Option(help="Base config of the ablation")] = Path(
        "configs/pbr-ablation.yaml"
    ),
    rows: Annotated[list[str] | None, typer.Option("--row", help="Only these rows (repeat)")] = None,
    results: Annotated[Path, typer.Option(help="Per-row JSON folder")] = Path("var/results/ablation"),
    markdown: Annotated[Path, typer.Option(help="Table to (re)write")] = Path("docs/RESULTS.md"),
    force: Annotated[bool, typer.Option(help="Recompute rows whose JSON exists")] = False,
) -> None:
    """Run the ablation table (resumable: rows with a JSON are skipped) and regenerate docs/RESULTS.md."""
    from training.ablate import main as ablate_main

    argv = ["--config", str(config), "--results", str(results), "--markdown", str(markdown)]
    for r in rows or []:
        argv += ["--row", r]
    if force:
        argv.append("--force")
    ablate_main(argv)


# --- end training ---


# --- retraining (lazy imports) ---
model_app = typer.Typer(no_args_is_help=True, help="The model registry: list, promote, roll back.")
app.add_typer(model_app, name="model")


def _salt(settings: Settings) -> bytes | None:
    return settings.export_salt.get_secret_value().encode() if settings.export_salt else None


async def _export_logs(
    settings: Settings, out_dir: Path, since: str | None, chats: list[str], overwrite: bool
):
    from datetime import UTC, datetime

    from training.chatlogs import export_from_service

    when = datetime.fromisoformat(since) if since else None
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    service = await _service(settings)
    try:
        return await export_from_service(
            service,
            out_dir,
            since=when,
            chats=chats,
            salt=_salt(settings),
            val_fraction=settings.retrain_val_fraction,
            overwrite=overwrite,
        )
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
    from training.chatlogs import ExportRefused

    try:
        info = _run(_export_logs(Settings(), out_dir, since, chats or [], overwrite))
    except ExportRefused as exc:
        _fail(str(exc))
    console.print(
        f"{info['samples']} samples from {info['chats']} chats, {info['stickers']} stickers → {out_dir}"
    )


@app.command("retrain")
def retrain_cmd(
    base: Annotated[
        Path | None, typer.Option(help="Checkpoint to fine-tune (default: the current version's)")
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a training config value (repeat)")
    ] = None,
    promote: Annotated[bool, typer.Option(help="Promote the candidate if it passes")] = True,
    since: Annotated[str | None, typer.Option(help="Only logs from this date on")] = None,
) -> None:
    """Export the logs, fine-tune the serving model on them plus the base data, evaluate candidate and serving
    model on the same held-back logs and validation sets, and promote the candidate unless it is worse."""
    import time as _time

    from retraining.retrain import RetrainError, retrain

    settings = Settings()
    work = settings.home / "retrain" / _time.strftime("%Y%m%d-%H%M%S")
    info = _run(_export_logs(settings, work / "logs", since, [], False))
    console.print(f"logs: {info['samples']} samples from {info['chats']} chats")
    try:
        report = retrain(
            settings, work / "logs", work, base_checkpoint=base, promote=promote, overrides=overrides or []
        )
    except RetrainError as exc:
        _fail(str(exc))
    for line in report["reasons"]:
        console.print(f"  {line}")
    verdict = (
        "promoted" if report["promoted"] else ("passed, not promoted" if report["passed"] else "rejected")
    )
    console.print(f"{report['version']}: {verdict} (serving was {report['serving_was']})")


@model_app.command("list")
def model_list() -> None:
    """Every model version with its R@1 on the held-back logs; * marks the one served."""
    from engine.registry import ModelRegistry

    registry = ModelRegistry(Settings().models_dir)
    current = registry.current_name()
    table = Table("", "version", "model", "created", "logs R@1 (cand/serving)", "passed", "promoted")
    for v in registry.versions():
        m = v.info.get("metrics") or {}
        r1 = "/".join(
            str(m.get(k, {}).get("chat-logs", {}).get("R@1", "-")) for k in ("candidate", "serving")
        )
        table.add_row(
            "*" if v.name == current else "",
            v.name,
            str(v.manifest.get("version")),
            str(v.info.get("created", "")),
            r1 if m else "-",
            str(v.info.get("passed", "-")),
            str(v.info.get("promoted", "-")),
        )
    console.print(table)


@model_app.command("promote")
def model_promote(
    version: Annotated[str, typer.Argument(help="A version from `stickerpick model list`")],
) -> None:
    """Serve VERSION (running bots pick it up within STICKERPICK_MODEL_CHECK_S seconds)."""
    from engine.registry import ModelRegistry, RegistryError

    try:
        v = ModelRegistry(Settings().models_dir).promote(version)
    except RegistryError as exc:
        _fail(str(exc))
    console.print(f"now serving {v.name} ({v.manifest.get('version')})")


@model_app.command("rollback")
def model_rollback() -> None:
    """Serve the version that was served before the current one."""
    from engine.registry import ModelRegistry, RegistryError

    try:
        v = ModelRegistry(Settings().models_dir).rollback()
    except RegistryError as exc:
        _fail(str(exc))
    console.print(f"rolled back: now serving {v.name} ({v.manifest.get('version')})")


# --- end retraining ---


def _mount_optional() -> None:
    """Training-side command groups; their modules import torch only inside their commands."""
    try:
        from training.data.cli import app as data_app
    except ImportError:  # the training extras are not installed
        return
    data_app.command("export")(data_export_cmd)  # chat logs → dataset
    app.add_typer(data_app, name="data", help="Datasets: convert public corpora to the sticker format.")


_mount_optional()


def explain(exc: BaseException, settings: Settings | None) -> str:
    """One line for an operator: what is wrong and what to do (issue 14). Never a token or message text."""
    import errno

    from sqlalchemy.exc import DBAPIError

    from bot.redaction import describe
    from engine.ranking import ModelMissing

    home = str(settings.home) if settings is not None else "STICKERPICK_HOME"
    media = str(settings.media_dir) if settings is not None else "the media store"
    if isinstance(exc, ModelMissing):
        return str(exc)
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
        settings: Settings | None = load_settings()
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


if __name__ == "__main__":
    main()
