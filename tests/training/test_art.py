"""More pictures for training: SVG art styles, every emoji with its keywords, big-pack candidates, clip art,
style-removing views, identity across styles in batches, and the licence summary of a training set."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.training.test_convert import FAKE_EMOJI, _opts, _unified
from tests.training.test_convert import node_modules as _fake_node_modules  # noqa: F401 (fixture)
from training.augment import STYLE_VIEWS, style_view
from training.data import emoji_art
from training.data.convert import (
    big_pack_emoji,
    clipart_text,
    convert_emoji_art,
    convert_meld,
    convert_openclipart,
)
from training.data.format import StickerDataset, load_split
from training.data.licences import training_data_summary

SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 72 72">'
    '<circle cx="36" cy="36" r="{r}" fill="#fcea2b" stroke="#000" stroke-width="2"/></svg>'
)


@pytest.fixture(scope="module")
def node_modules(_fake_node_modules: Path) -> Path:  # noqa: F811
    """The fake npm tree, plus OpenMoji SVGs for every fake emoji but the dog."""
    folder = _fake_node_modules / "openmoji" / "color" / "svg"
    folder.mkdir(parents=True, exist_ok=True)
    for i, (e, *_rest) in enumerate(FAKE_EMOJI):
        if e != "🐕":
            (folder / f"{_unified(e)}.svg").write_text(SVG.format(r=10 + i), encoding="utf-8")
    return _fake_node_modules


def test_svg_style_is_rendered_once_on_first_use(node_modules: Path) -> None:
    cat = emoji_art.load_catalogue(node_modules)
    joy = cat.lookup("😂")
    assert cat.has_image(joy, "openmoji") and not cat.has_image(cat.lookup("🐕"), "openmoji")
    # ❤️ is "2764-FE0F" in emoji-datasource; an SVG named without U+FE0F is the same emoji.
    heart = cat.lookup("❤")
    (node_modules / "openmoji" / "color" / "svg" / f"{_unified('❤️')}.svg").rename(
        node_modules / "openmoji" / "color" / "svg" / "2764.svg"
    )
    emoji_art._svg_files.cache_clear()
    assert cat.has_image(heart, "openmoji")
    path = cat.image_path(joy, "openmoji")
    with Image.open(path) as im:
        assert im.size == (emoji_art.IMAGE_SIZE, emoji_art.IMAGE_SIZE) and im.mode == "RGBA"
        centre, corner = im.getpixel((32, 32)), im.getpixel((0, 0))
    assert centre[3] == 255 and corner[3] == 0  # the circle is drawn, the rest transparent
    mtime = path.stat().st_mtime_ns
    assert cat.image_path(joy, "openmoji").stat().st_mtime_ns == mtime  # not rendered again


def test_emoji_art_pairs_every_keyword_with_every_drawn_emoji(node_modules: Path, tmp_path: Path) -> None:
    opts = _opts(node_modules, styles=("google", "openmoji"), unseen_style="facebook")
    report = convert_emoji_art("unused", tmp_path / "art", opts)
    ds = StickerDataset.open(tmp_path / "art")
    train, val = load_split(tmp_path / "art", "train"), load_split(tmp_path / "art", "val")
    cat = emoji_art.load_catalogue(node_modules)
    # Only emoji drawn in every style (🫩 has no facebook art, 🐕 no OpenMoji).
    drawn = {e.char for e in cat.emoji if e.char not in ("🫩", "🐕")}
    assert {s.current.alt for s in train} == drawn
    assert {s.current.set_id for s in train} == {"google", "openmoji"}
    assert report.styles["val"] == ["facebook"] and {s.current.set_id for s in val} == {"facebook"}
    # 😂 has 3 keywords (its name, 2 tags): one is held out for val, never trained on.
    joy_train = {s.context[-1].text for s in train if s.current.alt == "😂"}
    joy_val = [s.context[-1].text for s in val if s.current.alt == "😂"]
    assert len(joy_val) == 1 and joy_val[0] not in joy_train and len(joy_train) == 2
    # Val ranks among every facebook emoji of the pool.
    assert all(len(ds.candidates(s)) == len(drawn) for s in val)


def test_pack_candidates_rank_among_the_whole_pack(node_modules: Path, tmp_path: Path) -> None:
    from tests.training.test_convert import _meld

    root = _meld(tmp_path / "data")
    small = convert_meld(root, tmp_path / "small", _opts(node_modules, styles=("google",)))
    big = convert_meld(
        root,
        tmp_path / "big",
        _opts(node_modules, styles=("google",), unseen_style="facebook", pack_candidates=True),
    )
    assert small.counts == big.counts
    cat = emoji_art.load_catalogue(node_modules)
    pack = [
        c
        for c in big_pack_emoji(cat, root)
        if all(cat.has_image(cat.lookup(c), s) for s in ("google", "facebook"))
    ]
    ds = StickerDataset.open(tmp_path / "big")
    val = load_split(tmp_path / "big", "val")
    cands = ds.candidates(val[0])
    want = {emoji_art.sticker_id("facebook", cat.lookup(c)) for c in pack}
    assert set(cands) == want and len(want) > 7 and val[0].current.sticker_id in cands
    assert (
        len(StickerDataset.open(tmp_path / "small").candidates(load_split(tmp_path / "small", "val")[0])) == 7
    )


def test_clipart_titles_and_pictures(tmp_path: Path) -> None:
    root = tmp_path / "png"
    for i, rel in enumerate(
        ["animals/cats/happy_cat_anonymous_01.png", "science/full_moon_dan_01.png", "food/pizza_02.png"]
    ):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGBA", (300 + i, 200), (i * 60, 10, 10, 255)).save(p)
    (root / "broken.png").write_bytes(b"not a png")
    assert (
        clipart_text(root / "animals/cats/happy_cat_anonymous_01.png", root)
        == "happy cat anonymous, cats, animals"
    )
    report = convert_openclipart(root, tmp_path / "clip", _opts(None))
    assert report.skipped == {"unreadable image": 1}
    samples = load_split(tmp_path / "clip", "train") + load_split(tmp_path / "clip", "val")
    assert sorted(s.context[0].text for s in samples) == [
        "full moon dan, science",
        "happy cat anonymous, cats, animals",
        "pizza, food",
    ]
    ds = StickerDataset.open(tmp_path / "clip")
    for s in samples:
        from training.data.format import load_sticker_image

        img = load_sticker_image(ds.index.find(s.current.sticker_id))
        assert max(img.size) <= 128


@pytest.mark.parametrize("kind", STYLE_VIEWS)
def test_style_views_keep_the_shape_and_change_the_style(kind: str) -> None:
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    for x in range(16, 48):
        for y in range(16, 48):
            img.putpixel((x, y), (250, 200, 20, 255) if (x + y) % 7 else (200, 30, 30, 255))
    out = style_view(img, random.Random(3), kind)
    assert out.size == img.size and out.mode == "RGBA"
    assert not np.array_equal(np.asarray(out), np.asarray(img))
    if kind in ("grayscale", "posterise", "flat"):
        assert np.array_equal(np.asarray(out)[..., 3], np.asarray(img)[..., 3])  # same silhouette
    if kind == "grayscale":
        rgb = np.asarray(out)[..., :3].astype(int)
        assert (rgb.max(-1) - rgb.min(-1)).max() <= 1
    if kind in ("stroke", "background"):
        assert np.asarray(out)[0, 0, 3] == 255  # the background is filled
    with pytest.raises(ValueError, match="unknown style view"):
        style_view(img, random.Random(0), "sepia")


def test_identity_across_sets_in_batches() -> None:
    from training.batching import make_batch
    from training.features import TextFeatures
    from training.prepare import TrainData
    from training.stickers import StickerTable

    table = StickerTable()
    for set_id in ("google", "twitter"):
        for e in ("😂", "❤️"):
            table.add((set_id, f"{set_id}-{e}"), Path(f"{set_id}{e}.png"), e)
    table.add(("openclipart", "clip-1"), Path("c.png"), None)
    ident = table.identities()
    assert ident[0] == ident[2] and ident[1] == ident[3] and len(set(ident.tolist())) == 3
    n, k = len(table), 4
    views = torch.arange(n * k * 2, dtype=torch.float32).reshape(n, k, 2)
    topics = table.topics()
    partners = [[j for j in range(n) if ident[j] == ident[i] and topics[j] != topics[i]] for i in range(n)]
    data = TrainData(
        text=TextFeatures(pooled=torch.zeros(5, 3)),
        sample_text=torch.arange(5),
        sample_sticker=torch.arange(5),
        sample_weight=torch.ones(5, dtype=torch.float64),
        polarity=torch.zeros(5, 3),
        stickers=table,
        view_feats=views,
        teacher_sims=torch.zeros(n, k, 7),
        topics=topics,
        sticker_text=TextFeatures(pooled=torch.zeros(n, 3)),
        has_text=torch.tensor([True] * 4 + [False]),
        info={},
        identity=ident,
        partners=partners,
        cross_style=1.0,
        text_dropout=1.0,
    )
    batch = make_batch(data, torch.arange(5), torch.Generator().manual_seed(0))
    assert torch.equal(batch["ident"], ident)
    feat_owner = (batch["img2"][:, 0] // (k * 2)).long()  # which sticker each second view was taken from
    assert feat_owner.tolist()[:4] == [2, 3, 0, 1] and feat_owner[4] == 4  # the other style; clip art: itself
    assert not batch["has_text"].any()  # dropout 1.0: every sticker read by its image alone
    data.cross_style, data.text_dropout = 0.0, 0.0
    batch = make_batch(data, torch.arange(5), torch.Generator().manual_seed(0))
    assert (batch["img2"][:, 0] // (k * 2)).long().tolist() == list(range(5))
    assert batch["has_text"].tolist() == [True] * 4 + [False]


def test_training_data_summary_names_licences(node_modules: Path, tmp_path: Path) -> None:
    from tests.training.test_convert import _meld

    convert_meld(
        _meld(tmp_path / "data"), tmp_path / "meld", _opts(node_modules, styles=("google", "openmoji"))
    )
    summary = training_data_summary([{"path": str(tmp_path / "meld"), "weight": 2.0}])
    (d,) = summary["datasets"]
    assert d["corpus"].startswith("MELD") and "GPL-3.0" in d["licence"] and d["weight"] == 2.0
    assert summary["art"]["openmoji"]["licence"] == "CC-BY-SA-4.0"
    assert summary["art"]["google"]["licence"] == "Apache-2.0"
    assert summary["copyleft"] and not summary["non_commercial"]
    json.dumps(summary)
