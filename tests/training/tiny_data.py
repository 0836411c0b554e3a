"""A tiny dataset in the FORMAT.md layout (PNG stickers, two sets, emoji mappings) for the training tests."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

from training.data.format import CurrentSticker, Sample, StickerEntry, Turn, write_dataset

EMOJI = ["😂", "😢", "😠", "😮", "😍", "😐"]
WORDS = {
    "😂": ["haha that is hilarious", "lol so funny", "i can't stop laughing"],
    "😢": ["i am so sad today", "this is heartbreaking", "i miss you so much"],
    "😠": ["this makes me angry", "i hate this so much", "stop it right now"],
    "😮": ["wow really?", "no way, what happened", "that is surprising"],
    "😍": ["i love this", "you look amazing", "so beautiful"],
    "😐": ["ok", "fine i guess", "whatever you say"],
}
COLOURS = [(230, 180, 30), (40, 90, 220), (220, 40, 40), (120, 200, 120), (240, 100, 180), (128, 128, 128)]


def sticker_image(i: int, style: int) -> Image.Image:
    img = Image.new("RGBA", (24, 24), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    c = COLOURS[i]
    if style == 0:
        d.ellipse((2, 2, 21, 21), fill=(*c, 255))
    else:
        d.rectangle((3, 3, 20, 20), fill=(*c, 255))
    d.line((6 + i, 8, 17, 16 - i), fill=(0, 0, 0, 255), width=2)
    return img


def make_dataset(root: Path, n_train: int = 96, n_val: int = 24, seed: int = 0, styles: int = 2) -> Path:
    rng = random.Random(seed)
    stickers = []
    for st in range(styles):
        for i, e in enumerate(EMOJI):
            stickers.append(StickerEntry(f"set{st}", f"s{st}-{i}", sticker_image(i, st), e))

    def samples(n: int) -> list[Sample]:
        out = []
        for k in range(n):
            i = rng.randrange(len(EMOJI))
            st = rng.randrange(styles)
            e = EMOJI[i]
            turns = [
                Turn(text=rng.choice(WORDS[EMOJI[rng.randrange(len(EMOJI))]]), id=str(2 * k)),
                Turn(text=f"{rng.choice(WORDS[e])} {k % 7}", id=str(2 * k + 1)),
            ]
            out.append(Sample(context=tuple(turns), current=CurrentSticker(f"set{st}", f"s{st}-{i}", e)))
        return out

    write_dataset(root, {"train": samples(n_train), "val": samples(n_val)}, stickers, overwrite=True)
    return root
