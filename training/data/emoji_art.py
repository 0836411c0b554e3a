"""Emoji artwork as sticker sets: one set per art style, one sticker per emoji PNG.

The artwork is the npm packages under ``vendor/node_modules`` (``bash dev.sh setup`` installs them):
``emoji-datasource`` (``emoji.json``: code points, short names, categories, which styles have an image),
``emoji-datasource-<style>`` (``img/<style>/64/<unified lowercase>.png``) and ``emojibase-data`` (English
labels and tags). A sticker of style ``google`` for 😂 has set id ``google`` and sticker id ``google-1f602``
(the style, then the unified code points in lower case, as in the image's file name), and its emoji is the
fully-qualified emoji (``❤️`` with its U+FE0F).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from engine.fsutil import atomic_open, atomic_write_bytes
from training.data.format import EMOJI_MAPPING, STICKER_DIR, StickerEntry, read_emoji_mapping, staged_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_NODE_MODULES = REPO_ROOT / "vendor" / "node_modules"
SETUP_COMMAND = "bash dev.sh setup"
# Styles whose PNGs emoji-datasource ships, and styles rendered here from another npm package's SVGs.
DATASOURCE_STYLES = ("google", "twitter", "facebook")
SVG_STYLES = ("openmoji",)
STYLES = (*DATASOURCE_STYLES, *SVG_STYLES)
# The art a model may train on; facebook is the evaluation-only style (no one trains on it: see STYLE_INFO).
TRAIN_STYLES = ("google", "twitter", "openmoji")
IMAGE_SIZE = 64  # the per-emoji PNGs emoji-datasource ships (img/<style>/64/); SVG styles are rendered so
RENDER_DIR = ".stickerpick-render"  # under node_modules: SVG styles rendered to PNG (re-made after `npm ci`)
VS16 = "\ufe0f"


@dataclass(frozen=True)
class StyleInfo:
    """An art style: what it is, and the licence of its images as the emoji-datasource README states it."""

    style: str
    title: str
    licence: str
    source: str
    note: str = ""


# From vendor/node_modules/emoji-datasource/README.md ("Image Sources", emoji-datasource 16.0.0). The npm
# packages themselves are MIT (their package.json and LICENSE), which covers the data and code, not the art.
STYLE_INFO: dict[str, StyleInfo] = {
    "google": StyleInfo(
        "google",
        "Noto Emoji",
        "Apache-2.0",
        "https://github.com/googlefonts/noto-emoji (v2.048, via npm emoji-datasource-google 16.0.0)",
        "emoji-datasource: 'Android/Google/Noto images, are available under the Apache License 2.0'. "
        "(Noto's fonts are OFL-1.1; the PNG images are Apache-2.0.)",
    ),
    "twitter": StyleInfo(
        "twitter",
        "Twemoji",
        "CC-BY-4.0",
        "https://github.com/jdecked/twemoji (v16.0.1, via npm emoji-datasource-twitter 16.0.0)",
        "emoji-datasource: 'Twitter images are available under the Creative Commons Attribution 4.0 license'. "
        "Attribution required.",
    ),
    "facebook": StyleInfo(
        "facebook",
        "Facebook emoji",
        "unclear (© Facebook, Inc.)",
        "Facebook emoji v9, fetched 2024-02-05 (via npm emoji-datasource-facebook 16.0.0)",
        "emoji-datasource: 'Facebook images, © Facebook, Inc., have no clear licensing.' Use for research and "
        "evaluation only; do not ship these images.",
    ),
    "openmoji": StyleInfo(
        "openmoji",
        "OpenMoji",
        "CC-BY-SA-4.0",
        "https://openmoji.org (v17.0.0, via npm openmoji 17.0.0, color/svg rendered to PNG with resvg)",
        "OpenMoji README: 'All emojis designed by OpenMoji – the open-source emoji and icon project. License: "
        "CC BY-SA 4.0'. Attribution required; adaptations share alike.",
    ),
}


class EmojiArtMissing(FileNotFoundError):
    """The npm emoji artwork is not installed where it was looked for."""


def find_node_modules(path: Path | str | None = None) -> Path:
    """The ``node_modules`` folder holding the emoji artwork (default ``<repo>/vendor/node_modules``)."""
    base = Path(path) if path is not None else DEFAULT_NODE_MODULES
    if not (base / "emoji-datasource" / "emoji.json").is_file():
        raise EmojiArtMissing(
            f"emoji artwork not found: {base / 'emoji-datasource' / 'emoji.json'} is missing. "
            f"Install it with `{SETUP_COMMAND}` (it runs `npm ci --prefix vendor`)."
        )
    return base


def _check_style(style: str) -> str:
    if style not in STYLES:
        raise ValueError(f"unknown emoji art style {style!r}; choose from {', '.join(STYLES)}")
    return style


def strip_vs16(text: str) -> str:
    return text.replace(VS16, "")


@dataclass(frozen=True)
class EmojiInfo:
    unified: str  # upper-case code points joined by '-', fully qualified ("2764-FE0F")
    char: str  # the emoji itself, fully qualified
    name: str  # Unicode name, lower case
    short_names: tuple[str, ...]
    category: str
    subcategory: str
    sort_order: int
    styles: tuple[str, ...]  # the styles emoji-datasource has an image for
    label: str = ""  # emojibase's English label
    tags: tuple[str, ...] = ()  # emojibase's English tags
    has_skin_tones: bool = False

    @property
    def file_stem(self) -> str:
        return self.unified.lower()

    def keywords(self) -> list[str]:
        """Names and keywords: emoji-datasource short names, then the emojibase label and tags, no repeats."""
        out: list[str] = []
        for word in (*(s.replace("_", " ") for s in self.short_names), self.label, *self.tags):
            if word and word not in out:
                out.append(word)
        return out


def _chars(unified: str) -> str:
    return "".join(chr(int(cp, 16)) for cp in unified.split("-"))


@dataclass
class EmojiCatalogue:
    node_modules: Path
    emoji: tuple[EmojiInfo, ...]
    _by_char: dict[str, EmojiInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_char = {strip_vs16(e.char): e for e in self.emoji}

    def get(self, char: str) -> EmojiInfo | None:
        """The emoji, however qualified ("❤" and "❤️" are the same one), or None."""
        return self._by_char.get(strip_vs16(char))

    def lookup(self, char: str) -> EmojiInfo:
        """The emoji, however qualified ("❤" and "❤️" are the same one); KeyError if unknown."""
        info = self.get(char)
        if info is None:
            raise KeyError(f"{char!r} ({_codepoints(char)}) is not in emoji-datasource")
        return info

    def image_path(self, info: EmojiInfo | str, style: str) -> Path:
        """The emoji's PNG in ``style``; an SVG style's PNG is rendered (once) on first use."""
        info = self.lookup(info) if isinstance(info, str) else info
        path = style_image_dir(self.node_modules, style) / f"{info.file_stem}.png"
        if style in SVG_STYLES and not path.is_file():
            svg = svg_source(self.node_modules, style, info.unified)
            if svg is not None:
                render_svg(svg, path, IMAGE_SIZE)
        return path

    def has_image(self, info: EmojiInfo, style: str) -> bool:
        if style in SVG_STYLES:
            return svg_source(self.node_modules, style, info.unified) is not None
        return style in info.styles and self.image_path(info, style).is_file()


def _codepoints(text: str) -> str:
    return " ".join(f"U+{ord(c):04X}" for c in text)


def style_image_dir(node_modules: Path, style: str) -> Path:
    _check_style(style)
    if style in SVG_STYLES:
        return node_modules / RENDER_DIR / style / str(IMAGE_SIZE)
    return node_modules / f"emoji-datasource-{style}" / "img" / style / str(IMAGE_SIZE)


@lru_cache(maxsize=8)
def _svg_files(node_modules: Path, style: str) -> dict[str, Path]:
    """{code points without U+FE0F, upper case: SVG file} of an SVG style."""
    if style == "openmoji":
        folder = node_modules / "openmoji" / "color" / "svg"
    else:  # pragma: no cover - every SVG style is listed above
        raise ValueError(style)
    if not folder.is_dir():
        return {}
    return {_bare(p.stem): p for p in sorted(folder.glob("*.svg"))}


def _bare(unified: str) -> str:
    return "-".join(cp for cp in unified.upper().split("-") if cp != "FE0F")


def svg_source(node_modules: Path, style: str, unified: str) -> Path | None:
    return _svg_files(node_modules, style).get(_bare(unified))


def render_svg(svg: Path, out: Path, size: int) -> None:
    """Rasterise an SVG to a ``size``×``size`` RGBA PNG (resvg), written atomically."""
    import resvg_py

    data = bytes(resvg_py.svg_to_bytes(svg_path=str(svg), width=size, height=size, skip_system_fonts=True))
    atomic_write_bytes(out, data)


@lru_cache(maxsize=4)
def _load_catalogue(node_modules: Path) -> EmojiCatalogue:
    raw = json.loads((node_modules / "emoji-datasource" / "emoji.json").read_text(encoding="utf-8"))
    base: dict[str, dict] = {}
    base_file = node_modules / "emojibase-data" / "en" / "data.json"
    if base_file.is_file():
        for e in json.loads(base_file.read_text(encoding="utf-8")):
            if isinstance(e, dict) and e.get("emoji"):
                base[strip_vs16(e["emoji"])] = e
    out: list[EmojiInfo] = []
    for e in raw:
        unified = e["unified"].upper()
        char = _chars(unified)
        extra = base.get(strip_vs16(char), {})
        out.append(
            EmojiInfo(
                unified=unified,
                char=char,
                name=(e.get("name") or "").lower(),
                short_names=tuple(e.get("short_names") or [e.get("short_name", "")]),
                category=e.get("category") or "",
                subcategory=e.get("subcategory") or "",
                sort_order=int(e.get("sort_order") or 0),
                styles=tuple(s for s in STYLES if e.get(f"has_img_{s}")),
                label=extra.get("label", ""),
                tags=tuple(extra.get("tags") or ()),
                has_skin_tones=bool(e.get("skin_variations")),
            )
        )
    out.sort(key=lambda i: i.sort_order)
    return EmojiCatalogue(node_modules=node_modules, emoji=tuple(out))


def load_catalogue(node_modules: Path | str | None = None) -> EmojiCatalogue:
    """Every emoji emoji-datasource knows, with emojibase's label and tags, in Unicode's order."""
    return _load_catalogue(find_node_modules(node_modules).resolve())


def emoji_keywords(char: str, node_modules: Path | str | None = None) -> list[str]:
    """An emoji's names and keywords: emoji-datasource short names + emojibase label and tags."""
    return load_catalogue(node_modules).lookup(char).keywords()


def emoji_in_all_styles(
    styles: Sequence[str] = STYLES, node_modules: Path | str | None = None
) -> list[EmojiInfo]:
    """The emoji that have an image in every one of ``styles`` (files checked), in Unicode's order."""
    cat = load_catalogue(node_modules)
    for s in styles:
        _check_style(s)
    return [e for e in cat.emoji if all(cat.has_image(e, s) for s in styles)]


def sticker_id(style: str, info: EmojiInfo) -> str:
    return f"{_check_style(style)}-{info.file_stem}"


def emoji_sticker_entries(
    emoji: Iterable[str], styles: Sequence[str], node_modules: Path | str | None = None
) -> list[StickerEntry]:
    """Sticker entries (for :func:`training.data.format.write_dataset`): each emoji in each style, set id =
    style. An emoji a style has no image for is an error naming both."""
    cat = load_catalogue(node_modules)
    out: list[StickerEntry] = []
    for style in styles:
        for char in dict.fromkeys(emoji):
            info = cat.lookup(char)
            path = cat.image_path(info, style)
            if not cat.has_image(info, style):
                raise FileNotFoundError(f"style {style!r} has no image for {info.char} ({info.name}): {path}")
            out.append(
                StickerEntry(set_id=style, sticker_id=sticker_id(style, info), source=path, emoji=info.char)
            )
    return out


def copy_emoji_stickers(
    dataset_root: Path | str,
    emoji: Iterable[str],
    styles: Sequence[str],
    node_modules: Path | str | None = None,
) -> dict[str, list[str]]:
    """Copy the chosen emoji, in each style, into ``<dataset_root>/npy_stickers/<style>/`` and merge their
    emoji into that set's ``emoji_mapping.txt``. Returns {style: sticker ids}."""
    entries = emoji_sticker_entries(emoji, styles, node_modules)
    written: dict[str, list[str]] = {}
    for style in dict.fromkeys(e.set_id for e in entries):
        set_dir = Path(dataset_root) / STICKER_DIR / style
        set_dir.mkdir(parents=True, exist_ok=True)
        mapping = read_emoji_mapping(set_dir / EMOJI_MAPPING)
        for entry in (e for e in entries if e.set_id == style):
            assert isinstance(entry.source, Path)
            shutil.copyfile(entry.source, set_dir / f"{entry.sticker_id}.png")
            mapping[entry.sticker_id] = entry.emoji or ""
            written.setdefault(style, []).append(entry.sticker_id)
        _atomic_write_text(set_dir / EMOJI_MAPPING, "".join(f"{k}\t{v}\n" for k, v in mapping.items()))
    return written


def _atomic_write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
        os.fchmod(f.fileno(), 0o644)  # the temp file is 0600; a pack's mapping is an ordinary readable file
        f.write(text)


# ----------------------------------------------------------------------------------------- default pack
# Expressive emoji outside "Smileys & Emotion" worth a place in a chat's default pack.
EXTRA_EXPRESSIVE = (
    "🔥🎉🎊✨🎈💪👀🧠💃🕺🫂🤳💅🏆🥇🎯👑🌈⭐🌟☀️⚡🌹💐🌸🍀🎂🍰🍩🎁🥂🍻🍺🍷☕🍕🍿🎮🚀💡💰💸💍📸🎶"
    "✅❌❓❗‼️🐨🐔🐧🦉🐢🦋🐝🐙"
)
_GESTURE_SUBCATEGORIES = {
    "hand-fingers-open",
    "hand-fingers-partial",
    "hand-single-finger",
    "hand-fingers-closed",
    "hands",
    "person-gesture",
}


def _is_zwj(info: EmojiInfo) -> bool:
    return "200D" in info.unified.split("-")


def default_pack_emoji(
    limit: int = 300, style: str = "google", node_modules: Path | str | None = None
) -> list[EmojiInfo]:
    """A few hundred *expressive* emoji for the bundled default pack, most expressive groups first:
    every "Smileys & Emotion" emoji (faces, hearts, 💯💢💥…), hand gestures and person gestures (base forms
    only: no skin-tone or gendered variants), a hand-picked list of objects and symbols (🔥🎉✨🏆…), and the
    animal faces of "Animals & Nature". Only emoji ``style`` has an image for; at most ``limit``."""
    cat = load_catalogue(node_modules)
    _check_style(style)
    chosen: dict[str, EmojiInfo] = {}

    def add(infos: Iterable[EmojiInfo]) -> None:
        for info in infos:
            if info.unified not in chosen and cat.has_image(info, style):
                chosen[info.unified] = info

    add(e for e in cat.emoji if e.category == "Smileys & Emotion")
    # Gendered person gestures are ZWJ sequences (🤷‍♀️): the base form is enough in a default pack.
    add(
        e
        for e in cat.emoji
        if e.category == "People & Body" and e.subcategory in _GESTURE_SUBCATEGORIES and not _is_zwj(e)
    )
    add(info for info in map(cat.get, _split_emoji(EXTRA_EXPRESSIVE)) if info is not None)
    add(e for e in cat.emoji if e.category == "Animals & Nature" and e.name.endswith(" face"))
    return list(chosen.values())[:limit]


def _split_emoji(text: str) -> list[str]:
    """A run of emoji → the emoji (a U+FE0F belongs to the character before it)."""
    out: list[str] = []
    for ch in text:
        if ch == VS16 and out:
            out[-1] += ch
        else:
            out.append(ch)
    return out


def write_default_pack(
    out_dir: Path | str,
    style: str = "google",
    limit: int = 300,
    node_modules: Path | str | None = None,
) -> Path:
    """Write the default pack: ``<out_dir>/<unified>.png`` per emoji and ``<out_dir>/pack.json``; returns the
    ``pack.json`` path. The folder is built beside ``out_dir`` and renamed into place (replacing an old one).

    ``pack.json`` = {"name": slug, "title", "style", "licence", "source", "stickers": [{"file", "id", "emoji",
    "tags"}]}; ``name`` is a slug (``noto-emoji``) because the engine's pack importer takes it as the pack name.
    """
    out_dir = Path(out_dir)
    cat = load_catalogue(node_modules)
    info = STYLE_INFO[_check_style(style)]
    chosen = default_pack_emoji(limit=limit, style=style, node_modules=cat.node_modules)
    stickers = [
        {"file": f"{e.file_stem}.png", "id": sticker_id(style, e), "emoji": e.char, "tags": e.keywords()}
        for e in chosen
    ]
    meta = {
        "name": info.title.lower().replace(" ", "-"),
        "title": info.title,
        "style": style,
        "licence": info.licence,
        "licence_note": info.note,
        "source": info.source,
        "stickers": stickers,
    }
    with staged_dir(out_dir, 0o755) as tmp:
        for e in chosen:
            shutil.copyfile(cat.image_path(e, style), tmp / f"{e.file_stem}.png")
        (tmp / "pack.json").write_text(
            json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
    return out_dir / "pack.json"
