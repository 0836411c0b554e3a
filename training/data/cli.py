"""``stickerpick data …``: convert the public corpora to the dataset format, build the default emoji pack.

Paths are always arguments: nothing here knows where the corpora live (docs/FORMAT.md).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from training.data.conversion import ConversionReport

app = typer.Typer(no_args_is_help=True, help="Datasets: convert public corpora to the sticker format.")


class DatasetName(StrEnum):
    tweeteval_emoji = "tweeteval-emoji"
    meld = "meld"
    dailydialog = "dailydialog"
    goemotions = "goemotions"
    xed = "xed"
    emoji_names = "emoji-names"
    emoji_art = "emoji-art"
    openclipart = "openclipart"


class Variant(StrEnum):
    accompany = "accompany"
    reply = "reply"


class Style(StrEnum):
    google = "google"
    twitter = "twitter"
    facebook = "facebook"
    openmoji = "openmoji"


@app.command()
def convert(
    dataset: DatasetName = typer.Argument(..., help="Which corpus to convert."),
    data_root: Path = typer.Option(
        ...,
        "--data-root",
        help="The folder of the public corpora (holds tweeteval/, meld/, …; see docs/FORMAT.md).",
    ),
    out: Path = typer.Option(..., "--out", help="Dataset folder to write (train and val splits)."),
    style: list[Style] = typer.Option(
        [Style.google], "--style", help="Emoji art style(s) for the training stickers; repeat for several."
    ),
    unseen_style: Style | None = typer.Option(
        None, "--unseen-style", help="A style kept out of training: the val split uses only it."
    ),
    variant: Variant = typer.Option(
        Variant.accompany,
        "--variant",
        help="MELD/DailyDialog: sticker with utterance t, or as the reply to it.",
    ),
    max_samples: int | None = typer.Option(None, "--max-samples", min=1, help="At most this many per split."),
    context_turns: int = typer.Option(8, "--context-turns", min=1, help="Keep the last N turns of context."),
    node_modules: Path | None = typer.Option(
        None, "--node-modules", help="Where the npm emoji artwork is (default <repo>/vendor/node_modules)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    pack_candidates: bool = typer.Option(
        False,
        "--pack-candidates",
        help="Rank every sample among a whole pack of ~330 emoji of its style, not only the corpus's classes.",
    ),
    language: str = typer.Option(
        "en",
        "--language",
        help="XED: language code(s), comma-separated; 'train' = all but the held-out ones, 'held-out'. "
        "emoji-names: an emojibase-data locale (e.g. de): that locale's names, as a validation set only.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Convert a public corpus (TweetEval emoji, MELD, DailyDialog, GoEmotions, XED, emoji names and keywords, clip
    art) into a sticker dataset."""
    from training.data.convert import ConvertOptions
    from training.data.convert import convert as run_convert
    from training.data.emoji_art import EmojiArtMissing

    try:
        opts = ConvertOptions(
            styles=tuple(s.value for s in style),
            unseen_style=unseen_style.value if unseen_style else None,
            max_samples=max_samples,
            context_turns=context_turns,
            variant=variant.value,
            node_modules=node_modules,
            overwrite=overwrite,
            progress=progress,
            pack_candidates=pack_candidates,
            language=language,
        )
        report = run_convert(dataset.value, data_root, out, opts)
    except (EmojiArtMissing, FileNotFoundError, FileExistsError, ValueError) as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    _echo_report(report)


def _echo_report(report: ConversionReport) -> None:
    """What a conversion wrote (samples and styles per split) and what it skipped."""
    for split, n in report.counts.items():
        typer.echo(f"{split}: {n} samples, styles {', '.join(report.styles[split])}")
    for reason, n in report.skipped.items():
        typer.echo(f"skipped {n}: {reason}")
    typer.echo(f"wrote {report.out} in {report.seconds:.1f}s")


@app.command("default-pack")
def default_pack(
    out: Path = typer.Option(..., "--out", help="Folder to write the pack into (PNG files + pack.json)."),
    style: Style = typer.Option(Style.google, "--style"),
    limit: int = typer.Option(300, "--limit", min=1),
    node_modules: Path | None = typer.Option(None, "--node-modules"),
) -> None:
    """Write the bundled default pack: a few hundred expressive emoji in one art style."""
    from training.data.emoji_art import EmojiArtMissing, write_default_pack

    try:
        pack = write_default_pack(out, style=style.value, limit=limit, node_modules=node_modules)
    except EmojiArtMissing as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    meta = json.loads(pack.read_text(encoding="utf-8"))
    typer.echo(f"{len(meta['stickers'])} stickers ({meta['title']}, licence {meta['licence']}) → {out}")
