"""Known pictures: every emoji of the training art styles, embedded by the model's own image tower, so that a
sticker which carries no text is named by the nearest picture the model knows.

A sticker with text (a Telegram sticker's emoji, a Discord sticker's name and tags, a caption) is fused with its
text by the learned gate. A sticker without text was ranked by its image alone, and among a whole pack of an art
style the model never saw that reading was weak: the model has not learnt to name a picture from its pixels
(image-only R@1 5 % for an emoji's own name among ~330), while the same emoji drawn in another style is close in
the image space (the nearest of 5,580 known pictures is the same emoji 47 % of the time for the unseen style,
77 % within the nearest 5). The bank turns the second into the first: the text-less sticker borrows the emoji of
its nearest known picture as its sticker text, when that picture is near enough (``threshold``, cosine).
Every sticker within the threshold, with text or without, also has its image vector pulled toward that picture
(``pull``: image + pull × picture, normalised) before it is fused with its text, so that a style the model never
saw is read more like the style it resembles; a sticker drawn in a known style is its own nearest picture and
barely moves (the bank is float16).

Which known picture is a sticker's (``naming``): its nearest one, or, by default, the pack vote: a sticker's 10
nearest pictures vote across the art styles, and its pack's stickers are named together (a sticker takes its
vote's emoji only where no pack-mate holds it by the nearest rule and none votes higher for it). The nearest
picture misnames look-alike faces of an unseen style (a crying face read as a sad sweating one); a vote alone
gives look-alikes one name. Named by the pack, a sticker's vector depends on its pack: the engine embeds packs
whole (engine/service/_embeddings.py).

The bank holds only art the model may train on (``training.data.emoji_art.TRAIN_STYLES``); the validation style
is never in it. It lives in the model directory as ``pictures.npz`` (vectors in float16, their emoji and art
style), listed and hashed in the manifest like every model file; the manifest's ``pictures`` entry says which
styles, how many, the threshold and the pull. The vectors depend on the image tower, so the bank is built again
whenever the image tower changes (``stickerpick export`` and retraining do it; ``python -m export.pictures
MODEL_DIR`` adds one to an existing directory).

    python -m export.pictures MODEL_DIR [--out OUT] [--node-modules vendor/node_modules] [--threshold 0.7]
                              [--pull 0.5] [--naming pack-vote|nearest]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from engine.ranking import sha256_file
from engine.ranking._pbr import (
    DEFAULT_KEEP_EXACT,
    DEFAULT_PICTURE_NAMING,
    DEFAULT_PICTURE_PULL,
    DEFAULT_PICTURE_THRESHOLD,
    DEFAULT_VOTE_TOP,
    NAMINGS,
    PICTURES_ROLE,
    PBRRanker,
)
from export.pbr import new_version, swap_in_staged

PICTURES_FILE = "pictures.npz"
# Chosen on validation (docs/RESULTS.md, "Naming a picture by the pictures the model knows"): below it the
# nearest known picture is more often another emoji than the same one drawn differently.
DEFAULT_THRESHOLD = 0.7
# Chosen on validation (docs/RESULTS.md, "Pulling a sticker toward the picture it resembles"): the least pull at
# which an unseen style's whole pack, with sticker text, reaches TweetEval R@1 28 as served; more costs MELD's
# reply reading. 0 turns the pull off (naming only).
DEFAULT_PULL = 0.5
# Chosen on validation (docs/RESULTS.md, "Naming a pack's pictures together"): the nearest picture misnames
# look-alike faces of an unseen style; the pack vote names them right and keeps whole packs as they were.
DEFAULT_NAMING = "pack-vote"


def known_pictures(
    node_modules: Path | str | None = None, styles: Sequence[str] | None = None
) -> list[tuple[Path, str, str]]:
    """(image file, emoji, style) of every emoji each training art style draws."""
    from training.data.emoji_art import TRAIN_STYLES, load_catalogue

    cat = load_catalogue(node_modules)
    out = []
    for style in styles or TRAIN_STYLES:
        if style not in TRAIN_STYLES:
            raise ValueError(f"{style!r} is not an art style the model may be trained on ({TRAIN_STYLES})")
        out += [(cat.image_path(e, style), e.char, style) for e in cat.emoji if cat.has_image(e, style)]
    return out


def embed_pictures(
    ranker: PBRRanker,
    pictures: Sequence[tuple[Path | Image.Image, str, str]],
    batch: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """The bank's arrays: image-only vectors (float16), their emoji and styles."""
    vectors = []
    for start in range(0, len(pictures), batch):
        chunk = pictures[start : start + batch]
        images = [p if isinstance(p, Image.Image) else Image.open(p).convert("RGBA") for p, _, _ in chunk]
        vectors.append(ranker.embed_images(images)[0])
        if progress is not None:
            progress(start + len(chunk), len(pictures))
    dim = int(ranker.manifest.get("embedding_dim", 0)) or 1
    return {
        "vectors": (np.concatenate(vectors) if vectors else np.zeros((0, dim))).astype(np.float16),
        "emoji": np.array([e for _, e, _ in pictures], dtype=str),
        "style": np.array([s for _, _, s in pictures], dtype=str),
    }


def add_pictures(
    model_dir: Path,
    out_dir: Path | None = None,
    pictures: Sequence[tuple[Path | Image.Image, str, str]] | None = None,
    node_modules: Path | str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    pull: float = DEFAULT_PULL,
    progress: Callable[[int, int], None] | None = None,
    naming: str = DEFAULT_NAMING,
) -> dict[str, Any]:
    """Write ``model_dir`` with a bank of known pictures (``pictures``, default: every emoji of the training
    styles) into ``out_dir`` (default: in place), replacing any bank it had, with a new version and hashes.
    Atomic: the directory is staged beside it and swapped in. Returns the new manifest."""
    model_dir = Path(model_dir)
    out_dir = Path(out_dir) if out_dir is not None else model_dir
    if pictures is None:
        pictures = known_pictures(node_modules)
    if not pictures:
        raise ValueError("no pictures to add: the training art styles drew no emoji")
    if not 0.0 <= pull <= 10.0:
        raise ValueError(f"pull must lie between 0 and 10, not {pull}")
    if naming not in NAMINGS:
        raise ValueError(f"naming must be one of {', '.join(NAMINGS)}, not {naming!r}")
    started = time.time()
    ranker = PBRRanker(model_dir, name_pictures=False)
    arrays = embed_pictures(ranker, pictures, progress=progress)
    manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".pictures-") as tmp:
        stage = Path(tmp) / "stage"
        shutil.copytree(model_dir, stage)
        np.savez(stage / PICTURES_FILE, **arrays)
        manifest["files"][PICTURES_ROLE] = PICTURES_FILE
        manifest["sha256"] = {name: sha256_file(stage / name) for name in manifest["files"].values()}
        styles = sorted(set(arrays["style"].tolist()))
        manifest["pictures"] = {
            "count": len(arrays["emoji"]),
            "styles": {s: int((arrays["style"] == s).sum()) for s in styles},
            "threshold": float(threshold),
            "pull": float(pull),
            "naming": naming,
            "vote_top": DEFAULT_VOTE_TOP,
            "keep_exact": DEFAULT_KEEP_EXACT,
            "image_tower": manifest["sha256"][manifest["files"]["image"]],
            "seconds": round(time.time() - started, 1),
        }
        # the settings change what the stickers are embedded as, so they are part of the version too
        said = f"threshold={float(threshold)!r};pull={float(pull)!r}"
        if naming != DEFAULT_PICTURE_NAMING:  # a bank named by the nearest picture keeps its old version
            said += f";naming={naming};vote_top={DEFAULT_VOTE_TOP};keep_exact={DEFAULT_KEEP_EXACT!r}"
        settings = {"pictures:settings": said}
        manifest["version"] = new_version(manifest["version"], {**manifest["sha256"], **settings})
        swap_in_staged(stage, manifest, out_dir, tmp)
    return manifest


def carry_pictures(
    serving_dir: Path, model_dir: Path, node_modules: Path | str | None = None
) -> dict[str, Any] | None:
    """Give ``model_dir`` (a freshly exported candidate, e.g. from retraining) a bank like ``serving_dir``'s:
    the same art, threshold and pull, embedded again by the candidate's own image tower, in place. None, and
    nothing changed, when ``serving_dir`` has no bank."""
    source = json.loads((Path(serving_dir) / "manifest.json").read_text(encoding="utf-8"))
    if PICTURES_ROLE not in source.get("files", {}):
        return None
    settings = source.get("pictures") or {}
    # what the engine reads where the manifest is silent (a bank made before a setting existed)
    threshold = float(settings.get("threshold", DEFAULT_PICTURE_THRESHOLD))
    pull = float(settings.get("pull", DEFAULT_PICTURE_PULL))
    naming = str(settings.get("naming", DEFAULT_PICTURE_NAMING))
    styles = list(settings.get("styles") or []) or None
    return add_pictures(
        model_dir,
        pictures=known_pictures(node_modules, styles),
        threshold=threshold,
        pull=pull,
        naming=naming,
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m export.pictures",
        description="Add a bank of known pictures (every emoji of the training art styles, embedded by the "
        "model's image tower) to a PBR model directory, so that stickers without text are named by their "
        "nearest known picture.",
    )
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="write here (default: rewrite MODEL_DIR in place)")
    ap.add_argument("--node-modules", type=Path, default=None, help="the emoji art (bash dev.sh setup)")
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="least cosine to be named")
    ap.add_argument(
        "--pull",
        type=float,
        default=DEFAULT_PULL,
        help="how far a sticker's image vector moves toward its nearest known picture (0: not at all)",
    )
    ap.add_argument(
        "--naming",
        choices=NAMINGS,
        default=DEFAULT_NAMING,
        help="how a sticker's known picture is chosen: its nearest one, or by a vote over its whole pack",
    )
    args = ap.parse_args(argv)
    from training.data.emoji_art import EmojiArtMissing

    try:
        pictures = known_pictures(args.node_modules)
    except EmojiArtMissing as exc:
        raise SystemExit(str(exc)) from None

    def progress(done: int, total: int) -> None:
        if done == total or done % 640 == 0:
            print(f"embedded {done}/{total} pictures", file=sys.stderr, flush=True)

    try:
        manifest = add_pictures(
            args.model_dir,
            args.out,
            pictures,
            threshold=args.threshold,
            pull=args.pull,
            progress=progress,
            naming=args.naming,
        )
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(
        f"{manifest['version']}: {manifest['pictures']['count']} known pictures -> {args.out or args.model_dir}"
    )


if __name__ == "__main__":
    main()
