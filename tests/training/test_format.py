from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data.format import (
    NUM_CANDIDATES,
    CurrentSticker,
    DatasetError,
    Sample,
    StickerDataset,
    StickerEntry,
    StickerIndex,
    Turn,
    alt_mapping,
    available_splits,
    candidates_for,
    default_candidates,
    load_split,
    load_sticker_image,
    write_dataset,
)

EMOJI = ["😂", "😍", "😭", "👍", "🔥"]


def _stickerchat(root: Path) -> Path:
    """A tiny StickerChat-style dataset: numeric ids, .npy stickers, an emoji mapping, no candidates."""
    rng = np.random.default_rng(0)
    set_dir = root / "npy_stickers" / "42"
    set_dir.mkdir(parents=True)
    for i in range(15):
        np.save(set_dir / f"{4200 + i}.npy", rng.integers(0, 256, (8, 6, 3), dtype=np.uint8))
    (set_dir / "emoji_mapping.txt").write_text(
        "".join(f"{4200 + i}\t{EMOJI[i % 5]}\n" for i in range(15)), encoding="utf-8"
    )
    small = root / "npy_stickers" / "7"
    small.mkdir()
    for i in range(4):
        np.save(small / f"{700 + i}.npy", np.zeros((4, 4, 3), dtype=np.uint8))
    lines = [
        {
            "context": [
                {"text": "i finally passed the exam", "id": 1, "from_id": 11, "reply_to_msg_id": None},
                {"text": "no way , congrats !", "id": 2, "from_id": 12, "reply_to_msg_id": 1},
            ],
            "current": {
                "from_id": 11,
                "reply_to_msg_id": 2,
                "sticker_set_id": 42,
                "sticker_id": 4207,
                "sticker_alt": "😂",
            },
        },
        {
            "context": [{"text": "good night", "id": 5, "from_id": 13, "reply_to_msg_id": None}],
            "current": {"from_id": 14, "reply_to_msg_id": None, "sticker_set_id": "42", "sticker_id": "4201"},
        },
        {
            "context": [{"text": "look", "id": 9, "from_id": 1, "reply_to_msg_id": None}],
            "current": {"from_id": 2, "sticker_set_id": "42", "sticker_id": "4203", "sticker_alt": ""},
            "candidates": [4203, "4204", 4205],
        },
        {
            "context": [{"text": "small set", "id": 1, "from_id": 1, "reply_to_msg_id": None}],
            "current": {"from_id": 2, "sticker_set_id": 7, "sticker_id": 702, "sticker_alt": "👍"},
        },
    ]
    text = "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n\n"
    (root / "release_train.json").write_text(text, encoding="utf-8")
    return root


def test_reads_stickerchat_ids_as_strings(tmp_path: Path) -> None:
    root = _stickerchat(tmp_path / "sc")
    samples = load_split(root, "train")
    assert len(samples) == 4
    first = samples[0]
    assert first.context[0] == Turn(text="i finally passed the exam", id="1", from_id="11", reply_to=None)
    assert first.context[1].reply_to == "1"
    assert first.current == CurrentSticker(
        set_id="42", sticker_id="4207", alt="😂", from_id="11", reply_to="2"
    )
    assert first.candidates is None
    assert samples[1].current.alt is None and samples[2].current.alt is None  # absent and "" alike
    assert samples[2].candidates == ("4203", "4204", "4205")
    assert available_splits(root) == ["train"]
    with pytest.raises(FileNotFoundError, match=r"release_val\.json"):
        load_split(root, "val")


def test_sticker_index_and_emoji_mapping(tmp_path: Path) -> None:
    root = _stickerchat(tmp_path / "sc")
    index = StickerIndex.scan(root)
    assert len(index) == 19 and index.sets() == ["42", "7"]
    assert index.path("42", "4207") == root / "npy_stickers" / "42" / "4207.npy"
    assert index.path(42, 4207) == index.find("4207")  # type: ignore[arg-type]
    assert index.alt("4207") == "😭" and index.alt("4203", "42") == "👍" and index.alt("702") is None
    img = load_sticker_image(index.find("4201"))
    assert img.size == (6, 8) and img.mode == "RGB"
    mapping = alt_mapping(index, load_split(root, "train"))
    # The set's mapping wins over a sample's sticker_alt; the sample's alt fills a gap.
    assert mapping["4207"] == "😭" and mapping["702"] == "👍"


def test_missing_candidates_are_ten_deterministic_with_the_positive(tmp_path: Path) -> None:
    root = _stickerchat(tmp_path / "sc")
    ds = StickerDataset.open(root)
    samples = ds.load("train")
    first = ds.candidates(samples[0])
    assert len(first) == NUM_CANDIDATES == len(set(first))
    assert "4207" in first and set(first) <= set(ds.index.stickers_of("42"))
    # The same sample gives the same draw when read again, by another reader, or with a fresh index …
    again = StickerDataset.open(root)
    assert again.candidates(again.load("train")[0]) == first
    # … and the draw depends on the sample, not on where it is in the file.
    assert candidates_for(samples[0], StickerIndex.scan(root)) == first
    assert default_candidates(samples[0], list(reversed(ds.index.stickers_of("42")))) == first
    second = ds.candidates(samples[1])
    assert "4201" in second and len(second) == 10 and second != first
    assert ds.candidates(samples[0], seed=1) != first
    # Explicit candidates win; a set smaller than 10 gives all of it.
    assert ds.candidates(samples[2]) == ["4203", "4204", "4205"]
    assert sorted(ds.candidates(samples[3])) == ["700", "701", "702", "703"]


def test_bad_lines_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "release_val.json").write_text(
        '{"context": [], "current": {"sticker_id": 1}}\n', encoding="utf-8"
    )
    with pytest.raises(DatasetError, match=r"release_val.json:1: .*sticker_set_id"):
        load_split(tmp_path, "val")
    (tmp_path / "release_val.json").write_text("\n{oops\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"release_val.json:2"):
        load_split(tmp_path, "val")


def test_ambiguous_sticker_id_across_sets(tmp_path: Path) -> None:
    for s in ("a", "b"):
        (tmp_path / "npy_stickers" / s).mkdir(parents=True)
        np.save(tmp_path / "npy_stickers" / s / "1.npy", np.zeros((2, 2, 3), dtype=np.uint8))
    index = StickerIndex.scan(tmp_path)
    assert index.path("a", "1") != index.path("b", "1")
    with pytest.raises(KeyError, match="unique across sets"):
        index.find("1")


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    src_png = tmp_path / "src.png"
    Image.new("RGBA", (5, 3), (255, 0, 0, 128)).save(src_png)
    stickers = [
        StickerEntry("s1", "a", np.full((4, 4, 3), 7, dtype=np.uint8), "😂"),
        StickerEntry("s1", "b", Image.new("RGB", (6, 6), (0, 255, 0)), "❤️"),
        StickerEntry("s2", "c", src_png, None),
    ]
    train = [
        Sample(
            context=[Turn("hello there", "1", "11"), Turn("hi !", "2", "12", reply_to="1")],
            current=CurrentSticker("s1", "a", "😂", from_id="11", reply_to="2"),
        ),
        Sample(
            context=[Turn("ünïcödé ✓ مرحبا", "m-1", "user-x")],
            current=CurrentSticker("s2", "c", None),
            candidates=["c", "a", "b"],
        ),
    ]
    val = [Sample(context=[], current=CurrentSticker("s1", "b", "❤️", from_id="0"))]
    out = tmp_path / "ds"
    counts = write_dataset(out, {"train": train, "val": val}, stickers, extra_files={"note.json": "{}"})
    assert counts == {"train": 2, "val": 1}
    assert load_split(out, "train") == train and load_split(out, "val") == val
    assert available_splits(out) == ["train", "val"]
    assert sorted(p.name for p in out.iterdir()) == [
        "note.json",
        "npy_stickers",
        "release_train.json",
        "release_val.json",
    ]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folder left

    raw = json.loads((out / "release_train.json").read_text(encoding="utf-8").splitlines()[0])
    assert raw["context"][0]["from_id"] == 11 and raw["current"]["sticker_id"] == "a"  # ints out as numbers
    index = StickerIndex.scan(out)
    assert index.emoji == {"s1": {"a": "😂", "b": "❤️"}, "s2": {}}
    assert index.path("s1", "a").suffix == ".npy" and index.path("s1", "b").suffix == ".png"
    assert np.array_equal(
        np.asarray(load_sticker_image(index.path("s1", "a"))), np.full((4, 4, 3), 7, np.uint8)
    )
    assert load_sticker_image(index.find("c")).size == (5, 3)
    assert load_sticker_image(index.find("b")).convert("RGB").getpixel((0, 0)) == (0, 255, 0)

    with pytest.raises(FileExistsError):
        write_dataset(out, {"train": train})
    write_dataset(out, {"val": val}, overwrite=True)
    assert available_splits(out) == ["val"] and not (out / "npy_stickers").exists()


def test_writer_refuses_bad_input_and_leaves_nothing(tmp_path: Path) -> None:
    s = Sample(context=[], current=CurrentSticker("x", "1"))
    with pytest.raises(ValueError, match="split"):
        write_dataset(tmp_path / "a", {"dev": [s]})
    with pytest.raises(DatasetError, match="given twice"):
        stickers = [StickerEntry("x", "1", np.zeros((2, 2, 3), np.uint8))] * 2
        write_dataset(tmp_path / "b", {"train": [s]}, stickers)
    with pytest.raises(DatasetError, match="HxWx3"):
        write_dataset(tmp_path / "c", {"train": [s]}, [StickerEntry("x", "1", np.zeros((2, 2), np.float32))])
    assert list(tmp_path.iterdir()) == []
