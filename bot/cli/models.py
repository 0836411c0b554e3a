"""Models: `stickerpick train`, `ablate`, `export`, `verify`, `eval`, `retrain` and the registry
(`stickerpick model …`).

Training, export and retraining are imported only inside the commands that run them (docs/ARCHITECTURE.md:
the composition root), so serving never loads PyTorch.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from bot.cli._common import console, fail, load, progress_bar
from bot.cli.data import export_logs
from engine.settings import Settings

if TYPE_CHECKING:
    from engine.model_check import ModelCheck

model_app = typer.Typer(no_args_is_help=True, help="The model registry: list, promote, roll back.")


# ---------------------------------------------------------------------------------------------- export
def export_cmd(
    checkpoint: Annotated[
        str, typer.Argument(help="A PBR checkpoint (.pt), or `baseline` for all-MiniLM-L6-v2")
    ],
    out_dir: Annotated[Path | None, typer.Argument(help="The model directory to write")] = None,
    int8: Annotated[
        bool, typer.Option("--int8/--fp32", help="Dynamic int8 quantisation of the text tower")
    ] = True,
    pictures: Annotated[
        bool,
        typer.Option(
            "--pictures/--no-pictures",
            help="Add the bank of known pictures (every emoji of the training art styles), which names "
            "stickers that carry no text",
        ),
    ] = True,
) -> None:
    """Turn a checkpoint into the ONNX model directory the engine serves (manifest, towers, tokenizer)."""
    if checkpoint == "baseline":
        from export.baseline import export_text_baseline

        target = out_dir or load(Settings).baseline_model_dir
        manifest = export_text_baseline(target, quantize=int8)
    else:
        if out_dir is None:
            fail("Give the output directory: stickerpick export CHECKPOINT OUT_DIR")
        if not Path(checkpoint).is_file():
            fail(
                f"No checkpoint at {checkpoint}. `stickerpick train --config configs/pbr-default.yaml` makes one."
            )
        from export.pbr import export_pbr

        target = out_dir
        manifest = export_pbr(Path(checkpoint), target, quantize=int8)
        if pictures and manifest.get("use_sticker_text"):
            manifest = _add_pictures(target) or manifest
    console.print(f"{manifest['version']} → {target}")


def _add_pictures(target: Path) -> dict | None:
    """The bank of known pictures for a fresh export; without the emoji art, one line and no bank."""
    from export.pictures import add_pictures, known_pictures
    from training.data.emoji_art import EmojiArtMissing

    try:
        pictures = known_pictures()
    except EmojiArtMissing as exc:
        console.print(f"no bank of known pictures: {exc}")
        return None
    progress, update = progress_bar("embedding known pictures")
    with progress:
        return add_pictures(target, pictures=pictures, progress=update)


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

    from bot.operator_texts import model_missing
    from engine.model_check import check_model_dir
    from engine.ranking import ModelMissing

    try:
        check = check_model_dir(model_dir)
    except ModelMissing as exc:  # a directory to verify is the exporter's output
        fail(model_missing(exc, build="stickerpick export"))
    _print_check(model_dir, check)
    if checkpoint is None:
        name = json.loads((model_dir / "manifest.json").read_text()).get("checkpoint", "")
        checkpoint = model_dir / name if name else None
    if checkpoint is None or not checkpoint.is_file():
        if json_out:
            json_out.write_text(json.dumps({"check": check.as_dict()}, indent=2, ensure_ascii=False))
        if not check.ok:
            fail(f"{model_dir} is damaged or does not run (see above)")
        console.print("model ok (no checkpoint given: PyTorch parity not checked)")
        return
    if not check.ok:
        fail(f"{model_dir} is damaged or does not run (see above)")
    _parity(model_dir, checkpoint, check, data, split, max_samples, json_out)


def _print_check(model_dir: Path, check: ModelCheck) -> None:
    console.print(f"{model_dir}: {check.kind} model {check.version}", soft_wrap=True, highlight=False)
    table = Table("check", "result")
    for f in check.files:
        table.add_row(f.name, f.detail if f.ok else f"[red]{f.detail}[/red]")
    for tower in check.towers:
        shown = tower.detail if tower.ok else f"[red]{tower.detail}[/red]"
        table.add_row(tower.name, f"{shown} ({tower.seconds:.2f} s)")
    console.print(table)


def _parity(
    model_dir: Path,
    checkpoint: Path,
    check: ModelCheck,
    data: Path | None,
    split: str,
    max_samples: int,
    json_out: Path | None,
) -> None:
    """Every tower of the model directory against PyTorch on its checkpoint (needs the train extra)."""
    import json

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
        fail("fp32 export differs from PyTorch (cosine < 0.999)")


# ---------------------------------------------------------------------------------------------- eval
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
    from training.evaluate import evaluate

    settings = load(Settings)
    try:
        dataset = StickerDataset.open(data)
    except FileNotFoundError as exc:
        fail(f"{exc}. Convert a corpus with `stickerpick data convert ...`.")
    scorer = _scorer(model, settings, dataset)
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


def _scorer(model: str | None, settings: Settings, dataset: Any) -> Any:
    """What `eval --model` names (chance, the text classifier, a checkpoint or a model directory) for
    ``dataset`` (a ``training.data.format.StickerDataset``: training is imported only inside commands)."""
    from training.evaluate import EngineScorer, RandomScorer, TextLogRegScorer

    if model == "chance":
        return RandomScorer()
    if model == "logreg":
        from engine.ranking import TextBaselineRanker

        baseline = TextBaselineRanker(settings.baseline_model_dir)
        return TextLogRegScorer(baseline.embed_dialogues, dataset.load("train"))
    if model is not None and Path(model).is_file():
        from training.pbr_scorer import CheckpointScorer

        return CheckpointScorer.load(Path(model))
    from bot.operator_texts import model_missing
    from engine.ranking import ModelMissing, load_ranker

    model_dir = Path(model) if model else settings.serving_model_dir()
    try:
        return EngineScorer(load_ranker("auto", model_dir, max_turns=settings.history_turns))
    except ModelMissing as exc:
        fail(model_missing(exc))


# ---------------------------------------------------------------------------------------------- training
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


# ---------------------------------------------------------------------------------------------- retraining
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
    from retraining.settings import RetrainSettings

    settings = load(RetrainSettings)
    work = settings.home / "retrain" / _time.strftime("%Y%m%d-%H%M%S")
    logs = export_logs(
        settings,
        work / "logs",
        since=since,
        chats=[],
        overwrite=False,
        salt=settings.hash_salt(),
        val_fraction=settings.retrain_val_fraction,
    )
    info = asyncio.run(logs)
    console.print(f"logs: {info['samples']} samples from {info['chats']} chats")
    try:
        report = retrain(
            settings, work / "logs", work, base_checkpoint=base, promote=promote, overrides=overrides or []
        )
    except RetrainError as exc:
        fail(str(exc))
    for line in report["reasons"]:
        console.print(f"  {line}")
    verdict = (
        "promoted" if report["promoted"] else ("passed, not promoted" if report["passed"] else "rejected")
    )
    console.print(f"{report['version']}: {verdict} (serving was {report['serving_was']})")


# ---------------------------------------------------------------------------------------------- registry
@model_app.command("list")
def model_list() -> None:
    """Every model version with its R@1 on the held-back logs; * marks the one served."""
    from engine.registry import ModelRegistry

    registry = ModelRegistry(load(Settings).models_dir)
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
        v = ModelRegistry(load(Settings).models_dir).promote(version)
    except RegistryError as exc:
        fail(str(exc))
    console.print(f"now serving {v.name} ({v.manifest.get('version')})")


@model_app.command("rollback")
def model_rollback() -> None:
    """Serve the version that was served before the current one."""
    from engine.registry import ModelRegistry, RegistryError

    try:
        v = ModelRegistry(load(Settings).models_dir).rollback()
    except RegistryError as exc:
        fail(str(exc))
    console.print(f"rolled back: now serving {v.name} ({v.manifest.get('version')})")
