from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import SHARED_DATA
from training.data import emoji_art
from training.data.cli import app
from training.data.convert import (
    EMOTION_EMOJI,
    EMOTIONS,
    ConvertOptions,
    convert,
    convert_dailydialog,
    convert_goemotions,
    convert_meld,
    convert_tweeteval_emoji,
    normalise_emotion,
    speaker_id,
)
from training.data.format import StickerIndex, load_split

VS16 = "\ufe0f"
# A fake emoji-datasource: (emoji as emoji.json spells it, category, subcategory, name, styles with an image).
FAKE_EMOJI = [
    *(
        (e, "Smileys & Emotion", "face", f"face {i}", ("google", "twitter", "facebook"))
        for i, e in enumerate(EMOTION_EMOJI.values())
    ),
    ("😂", "Smileys & Emotion", "face-smiling", "face with tears of joy", ("google", "twitter", "facebook")),
    ("❤️", "Smileys & Emotion", "heart", "heavy black heart", ("google", "twitter", "facebook")),
    ("🔥", "Travel & Places", "sky & weather", "fire", ("google", "twitter", "facebook")),
    ("🫩", "Smileys & Emotion", "face-sleepy", "face with bags under eyes", ("google", "twitter")),
    ("👍", "People & Body", "hand-fingers-closed", "thumbs up sign", ("google", "twitter", "facebook")),
    ("🤷\u200d♀️", "People & Body", "person-gesture", "woman shrugging", ("google", "twitter", "facebook")),
    ("🐶", "Animals & Nature", "animal-mammal", "dog face", ("google", "twitter", "facebook")),
    ("🐕", "Animals & Nature", "animal-mammal", "dog", ("google", "twitter", "facebook")),
    ("🚗", "Travel & Places", "transport-ground", "automobile", ("google", "twitter", "facebook")),
]


def _unified(e: str) -> str:
    return "-".join(f"{ord(c):04X}" for c in e)


@pytest.fixture(scope="module")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """emoji-datasource(-<style>) and emojibase-data, shaped like the npm packages, for a few emoji."""
    root = tmp_path_factory.mktemp("node_modules")
    entries = []
    for order, (e, cat, sub, name, styles) in enumerate(FAKE_EMOJI):
        u = _unified(e)
        entry = {
            "unified": u,
            "image": f"{u.lower()}.png",
            "name": name.upper(),
            "short_names": [name.replace(" ", "_")],
        }
        entry.update(category=cat, subcategory=sub, sort_order=order)
        entry.update({f"has_img_{s}": s in styles for s in emoji_art.STYLES})
        if e == "👍":
            entry["skin_variations"] = {"1F3FB": {}}
        entries.append(entry)
        for s in styles:
            folder = root / f"emoji-datasource-{s}" / "img" / s / "64"
            folder.mkdir(parents=True, exist_ok=True)
            Image.new("RGBA", (4, 4), (order * 10, len(s) * 20, 0, 255)).save(folder / f"{u.lower()}.png")
    (root / "emoji-datasource").mkdir()
    (root / "emoji-datasource" / "emoji.json").write_text(json.dumps(entries), encoding="utf-8")
    (root / "emojibase-data" / "en").mkdir(parents=True)
    base = [{"emoji": "😂", "label": "face with tears of joy", "tags": ["lol", "laugh"], "hexcode": "1F602"}]
    (root / "emojibase-data" / "en" / "data.json").write_text(json.dumps(base), encoding="utf-8")
    return root


def _opts(node_modules: Path, **kw: object) -> ConvertOptions:
    return ConvertOptions(node_modules=node_modules, progress=False, **kw)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- fake corpora
def _tweeteval(root: Path) -> Path:
    base = root / "tweeteval" / "datasets" / "emoji"
    base.mkdir(parents=True)
    (base / "mapping.txt").write_text(
        "0\t❤\t_red_heart_\t\n1\t😂\t_face_with_tears_of_joy_\t\n2\t🔥\t_fire_\t\n", encoding="utf-8"
    )
    # A U+2028 inside a tweet must not split it; stray U+FE0F are removed.
    (base / "train_text.txt").write_text(
        f"love you {VS16} {VS16} \nlol\u2028 @user \nso hot {VS16}\nok \n", encoding="utf-8"
    )
    (base / "train_labels.txt").write_text("0\n1\n2\n1\n", encoding="utf-8")
    (base / "val_text.txt").write_text("a\nb\n", encoding="utf-8")
    (base / "val_labels.txt").write_text("2\n0\n", encoding="utf-8")
    return root


MELD_ROWS = [
    # Sr No., Utterance, Speaker, Emotion, Dialogue_ID, Utterance_ID (deliberately out of order)
    (1, "Hi!", "Ross", "joy", 0, 0),
    (3, "What?!", "Ross", "surprise", 0, 2),
    (2, "I'm pregnant.", "Rachel", "neutral", 0, 1),
    (4, "Ugh.", "Monica", "disgust", 0, 3),
    (5, "Go away.", "Joey", "anger", 1, 0),
    (6, "Fine.", "Chandler", "sadness", 1, 1),
]


def _meld(root: Path) -> Path:
    (root / "meld").mkdir(parents=True)
    header = [
        "Sr No.",
        "Utterance",
        "Speaker",
        "Emotion",
        "Sentiment",
        "Dialogue_ID",
        "Utterance_ID",
        "Season",
        "Episode",
        "StartTime",
        "EndTime",
    ]
    for name, rows in (("train", MELD_ROWS), ("dev", MELD_ROWS[4:])):
        with (root / "meld" / f"{name}_sent_emo.csv").open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            for sr, text, spk, emo, did, uid in rows:
                w.writerow([sr, text, spk, emo, "neutral", did, uid, 1, 1, "00:00:01,000", "00:00:02,000"])
    return root


def _dailydialog(root: Path) -> Path:
    for split in ("train", "validation"):
        (root / "dailydialog" / split).mkdir(parents=True)
    train = "Hello . __eou__ Hi , how are you ? __eou__ Great ! __eou__\nBad one . __eou__ Two . __eou__\nSo sad . __eou__ Sorry . __eou__\n"
    (root / "dailydialog/train/dialogues_train.txt").write_text(train, encoding="utf-8")
    (root / "dailydialog/train/dialogues_emotion_train.txt").write_text(
        "0 0 4 \n0 \n5 0 \n", encoding="utf-8"
    )
    (root / "dailydialog/validation/dialogues_validation.txt").write_text(
        "Eek ! __eou__ Boo . __eou__\n", encoding="utf-8"
    )
    (root / "dailydialog/validation/dialogues_emotion_validation.txt").write_text("3 6 \n", encoding="utf-8")
    return root


def _goemotions(root: Path) -> Path:
    base = root / "goemotions"
    base.mkdir(parents=True)
    names = ["admiration", "amusement", "anger", "joy", "sadness", "neutral", "fear"]
    (base / "emotions.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    ekman = {
        "anger": ["anger"],
        "joy": ["admiration", "amusement", "joy"],
        "sadness": ["sadness"],
        "fear": ["fear"],
    }
    (base / "ekman_mapping.json").write_text(json.dumps(ekman), encoding="utf-8")
    train = "Wow [NAME]!\t0,1\tc1\nmeh\t5\tc2\nfurious and sad\t2,4\tc3\nhappy-ish\t5,3\tc4\nscary\t6\tc5\n"
    (base / "train.tsv").write_text(train, encoding="utf-8")
    (base / "dev.tsv").write_text("ok\t5\td1\n", encoding="utf-8")
    return root


# ----------------------------------------------------------------------------------------------- tests
def test_emotion_table() -> None:
    assert tuple(EMOTION_EMOJI) == EMOTIONS and len(set(EMOTION_EMOJI.values())) == 7
    assert normalise_emotion("Joy") == "happiness" and normalise_emotion("no emotion") == "neutral"
    with pytest.raises(ValueError):
        normalise_emotion("boredom")
    assert speaker_id("Ross") == speaker_id(" Ross ") != speaker_id("Rachel") and speaker_id("Ross").isdigit()


def test_tweeteval_emoji(tmp_path: Path, node_modules: Path) -> None:
    data = _tweeteval(tmp_path / "data")
    out = tmp_path / "te"
    report = convert_tweeteval_emoji(
        data, out, _opts(node_modules, styles=("google", "twitter"), unseen_style="facebook")
    )
    assert report.counts == {"train": 4, "val": 2} and not (out / "release_test.json").exists()
    train, val = load_split(out, "train"), load_split(out, "val")
    assert [s.context[0].text for s in train] == ["love you", "lol @user", "so hot", "ok"]
    assert [s.current.alt for s in train] == ["❤️", "😂", "🔥", "😂"]  # the fully-qualified emoji
    assert [s.current.set_id for s in train] == ["google", "twitter", "google", "twitter"]
    assert train[0].current.sticker_id == "google-2764-fe0f"
    assert all(
        s.candidates and len(s.candidates) == 3 and s.current.sticker_id in s.candidates for s in train + val
    )
    assert all(c.startswith(s.current.set_id + "-") for s in train for c in s.candidates or ())
    assert {s.current.set_id for s in val} == {"facebook"} and report.styles["val"] == ["facebook"]
    index = StickerIndex.scan(out)
    assert index.sets() == ["facebook", "google", "twitter"] and len(index) == 9
    assert index.alt("twitter-1f602") == "😂"
    note = json.loads((out / "conversion.json").read_text(encoding="utf-8"))
    assert note["counts"] == report.counts and note["art_licences"]["twitter"]["licence"] == "CC-BY-4.0"

    with pytest.raises(FileExistsError):
        convert_tweeteval_emoji(data, out, _opts(node_modules))
    report = convert("tweeteval-emoji", data, out, _opts(node_modules, max_samples=1, overwrite=True))
    assert report.counts == {"train": 1, "val": 1} and StickerIndex.scan(out).sets() == ["google"]


def test_meld_accompany_and_reply(tmp_path: Path, node_modules: Path) -> None:
    data = _meld(tmp_path / "data")
    acc = convert_meld(data, tmp_path / "acc", _opts(node_modules, context_turns=2))
    assert acc.counts == {"train": 6, "val": 2}
    train = load_split(tmp_path / "acc", "train")
    # Dialogue 0 in Utterance_ID order; the sticker goes with utterance t, which ends the context.
    assert [s.context[-1].text for s in train[:4]] == ["Hi!", "I'm pregnant.", "What?!", "Ugh."]
    assert [s.current.alt for s in train[:4]] == ["😄", "😐", "😮", "🤢"]
    assert [len(s.context) for s in train] == [1, 2, 2, 2, 1, 2]  # capped at the last 2 turns
    assert train[3].context[0].text == "What?!" and train[3].context[0].id == "2"
    assert train[2].current.from_id == speaker_id("Ross") == train[0].context[0].from_id
    assert train[1].context[-1].from_id == speaker_id("Rachel") == train[1].current.from_id
    assert all(s.candidates and len(s.candidates) == 7 for s in train)

    rep = convert_meld(data, tmp_path / "rep", _opts(node_modules, variant="reply"))
    assert rep.counts == {"train": 4, "val": 1}  # t = 0 of each dialogue has nothing to reply to
    train = load_split(tmp_path / "rep", "train")
    assert [s.context[-1].text for s in train[:3]] == ["Hi!", "I'm pregnant.", "What?!"]
    assert [s.current.alt for s in train[:3]] == ["😐", "😮", "🤢"]
    assert train[0].current.from_id == speaker_id("Rachel") != train[0].context[-1].from_id
    assert rep.classes["train"]["😢"] == 1 and rep.classes["train"]["😄"] == 0


def test_dailydialog_skips_label_mismatch(tmp_path: Path, node_modules: Path) -> None:
    data = _dailydialog(tmp_path / "data")
    report = convert_dailydialog(data, tmp_path / "dd", _opts(node_modules))
    assert report.skipped == {"train/label_count_mismatch": 1}
    assert report.counts == {"train": 5, "val": 2}
    train = load_split(tmp_path / "dd", "train")
    assert [s.current.alt for s in train] == ["😐", "😐", "😄", "😢", "😐"]
    assert [s.current.from_id for s in train] == ["0", "1", "0", "0", "1"]
    assert train[1].context[-1].text == "Hi , how are you ?"
    val = load_split(tmp_path / "dd", "val")
    assert [s.current.alt for s in val] == ["😨", "😮"]
    reply = convert_dailydialog(data, tmp_path / "ddr", _opts(node_modules, variant="reply", max_samples=2))
    assert reply.counts == {"train": 2, "val": 1}


def test_goemotions_single_ekman_class(tmp_path: Path, node_modules: Path) -> None:
    data = _goemotions(tmp_path / "data")
    report = convert_goemotions(data, tmp_path / "go", _opts(node_modules, styles=("twitter",)))
    assert report.skipped == {"train/multiple_ekman_classes": 2}  # anger+sadness, neutral+joy
    train = load_split(tmp_path / "go", "train")
    assert [(s.context[0].text, s.context[0].id, s.current.alt) for s in train] == [
        ("Wow [NAME]!", "c1", "😄"),  # admiration + amusement: both joy
        ("meh", "c2", "😐"),
        ("scary", "c5", "😨"),
    ]
    assert report.counts["val"] == 1 and {s.current.set_id for s in train} == {"twitter"}


def test_options_are_checked(node_modules: Path) -> None:
    with pytest.raises(ValueError, match="also a training style"):
        ConvertOptions(styles=("google",), unseen_style="google")
    with pytest.raises(ValueError, match="unknown style"):
        ConvertOptions(styles=("apple",))
    with pytest.raises(ValueError, match="variant"):
        ConvertOptions(variant="both")


def test_style_without_the_image_is_an_error(tmp_path: Path, node_modules: Path) -> None:
    entries = emoji_art.emoji_sticker_entries(["🫩"], ["google"], node_modules)
    assert entries[0].sticker_id == "google-1fae9" and entries[0].emoji == "🫩"
    with pytest.raises(FileNotFoundError, match="facebook"):
        emoji_art.emoji_sticker_entries(["🫩"], ["facebook"], node_modules)


def test_cli_convert(tmp_path: Path, node_modules: Path) -> None:
    data = _goemotions(tmp_path / "data")
    args = ["convert", "goemotions", "--data-root", str(data), "--out", str(tmp_path / "o"), "--no-progress"]
    args += ["--style", "google", "--style", "twitter", "--node-modules", str(node_modules)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "train: 3 samples" in result.output and "multiple_ekman_classes" in result.output
    result = CliRunner().invoke(app, args)  # exists → a clear error, not a traceback
    assert result.exit_code == 1 and "exists" in result.output


# ----------------------------------------------------------------------------------------------- emoji art
def test_missing_artwork_names_the_setup_command(tmp_path: Path) -> None:
    with pytest.raises(emoji_art.EmojiArtMissing, match=r"bash dev\.sh setup") as info:
        emoji_art.find_node_modules(tmp_path)
    assert isinstance(info.value, FileNotFoundError)


def test_catalogue_lookup_and_keywords(node_modules: Path) -> None:
    cat = emoji_art.load_catalogue(node_modules)
    assert cat.lookup("❤") is cat.lookup("❤️") and cat.lookup("❤").char == "❤️"
    assert emoji_art.emoji_keywords("😂", node_modules) == ["face with tears of joy", "lol", "laugh"]
    both = emoji_art.emoji_in_all_styles(("google", "facebook"), node_modules)
    assert "🫩" not in {e.char for e in both} and "😂" in {e.char for e in both}


def test_copy_emoji_stickers_merges_mapping(tmp_path: Path, node_modules: Path) -> None:
    emoji_art.copy_emoji_stickers(tmp_path, ["😂"], ["google"], node_modules)
    written = emoji_art.copy_emoji_stickers(tmp_path, ["🔥", "😂"], ["google", "twitter"], node_modules)
    assert written == {
        "google": ["google-1f525", "google-1f602"],
        "twitter": ["twitter-1f525", "twitter-1f602"],
    }
    index = StickerIndex.scan(tmp_path)
    assert index.emoji["google"] == {"google-1f602": "😂", "google-1f525": "🔥"} and len(index) == 4


def test_default_pack_from_fake_artwork(tmp_path: Path, node_modules: Path) -> None:
    chosen = [e.char for e in emoji_art.default_pack_emoji(style="facebook", node_modules=node_modules)]
    assert "🫩" not in chosen and "🚗" not in chosen and "🐕" not in chosen and "🤷\u200d♀️" not in chosen
    assert chosen[:7] == list(EMOTION_EMOJI.values()) and {"👍", "🔥", "🐶"} <= set(chosen)
    assert len(emoji_art.default_pack_emoji(limit=3, node_modules=node_modules)) == 3
    pack = emoji_art.write_default_pack(tmp_path / "pack", node_modules=node_modules)
    meta = json.loads(pack.read_text(encoding="utf-8"))
    assert meta["name"] == "noto-emoji" and meta["style"] == "google" and meta["licence"] == "Apache-2.0"
    files = {s["file"] for s in meta["stickers"]}
    assert files == {p.name for p in (tmp_path / "pack").glob("*.png")} and "1f602.png" in files
    joy = next(s for s in meta["stickers"] if s["emoji"] == "😂")
    assert joy["id"] == "google-1f602" and "lol" in joy["tags"]
    emoji_art.write_default_pack(tmp_path / "pack", style="twitter", limit=2, node_modules=node_modules)
    assert len(list((tmp_path / "pack").glob("*.png"))) == 2  # replaced, not merged


@pytest.mark.skipif(
    not (emoji_art.DEFAULT_NODE_MODULES / "emoji-datasource").is_dir(), reason="npm artwork not installed"
)
def test_default_pack_selection_on_real_artwork() -> None:
    chosen = emoji_art.default_pack_emoji()
    chars = {e.char for e in chosen}
    assert 250 <= len(chosen) <= 300 and len(chars) == len(chosen)
    assert {"😂", "❤️", "🔥", "💯", "🎉", "✨", "👍", "🙏", "🐶"} <= chars
    assert not any(e.category == "People & Body" and "\u200d" in e.char for e in chosen)
    assert not any(0x1F3FB <= ord(c) <= 0x1F3FF for e in chosen for c in e.char)  # no skin-tone variants
    assert {e.category for e in chosen} >= {"Smileys & Emotion", "People & Body", "Animals & Nature"}


# ----------------------------------------------------------------------------------------------- real data
REAL_ART = pytest.mark.skipif(
    not (emoji_art.DEFAULT_NODE_MODULES / "emoji-datasource").is_dir(), reason="npm artwork not installed"
)


@pytest.mark.data
@REAL_ART
@pytest.mark.parametrize(
    ("dataset", "variant", "n_classes"),
    [
        ("tweeteval-emoji", "accompany", 20),
        ("meld", "accompany", 7),
        ("meld", "reply", 7),
        ("dailydialog", "reply", 7),
        ("goemotions", "accompany", 7),
    ],
)
def test_real_corpora_convert(tmp_path: Path, dataset: str, variant: str, n_classes: int) -> None:
    opts = ConvertOptions(
        styles=("google", "twitter"),
        unseen_style="facebook",
        variant=variant,
        max_samples=150,
        progress=False,
    )
    report = convert(dataset, SHARED_DATA, tmp_path / "ds", opts)
    assert report.counts == {"train": 150, "val": 150}
    train, val = load_split(tmp_path / "ds", "train"), load_split(tmp_path / "ds", "val")
    assert all(s.candidates is not None and len(s.candidates) == n_classes for s in train + val)
    assert {s.current.set_id for s in train} == {"google", "twitter"} and {s.current.set_id for s in val} == {
        "facebook"
    }
    assert all(s.context and len(s.context) <= 8 for s in train)
    assert len({s.current.alt for s in train}) >= 3  # not one class only
    assert not any(VS16 in t.text for s in train for t in s.context) or dataset != "tweeteval-emoji"
    index = StickerIndex.scan(tmp_path / "ds")
    assert len(index) == 3 * n_classes and all(index.alt(c) for s in val for c in s.candidates or ())


def _needs_emoji_artwork() -> None:
    """Skip unless the real emoji artwork (npm packages) is installed."""
    try:
        emoji_art.find_node_modules()
    except FileNotFoundError:
        pytest.skip("emoji artwork not installed (bash dev.sh setup)")


def test_emoji_names_holds_out_one_keyword_per_emoji(tmp_path):
    _needs_emoji_artwork()
    from training.data.convert import ConvertOptions, convert
    from training.data.format import load_split

    out = tmp_path / "names"
    report = convert(
        "emoji-names", tmp_path / "no-data", out, ConvertOptions(styles=("google",), progress=False)
    )
    train, val = load_split(out, "train"), load_split(out, "val")
    assert report.counts == {"train": len(train), "val": len(val)} and len(val) > 200
    seen = {(s.current.alt, s.context[0].text) for s in train}
    assert not any((s.current.alt, s.context[0].text) in seen for s in val)  # held-out keywords
    assert len({s.current.alt for s in train}) >= 290  # every emoji of the default pack is taught


def test_emoji_names_in_another_locale_is_a_validation_set_of_that_locales_names(tmp_path):
    _needs_emoji_artwork()
    from training.data.convert import ConvertOptions, convert
    from training.data.format import load_split

    out = tmp_path / "names-de"
    convert(
        "emoji-names",
        tmp_path / "no-data",
        out,
        ConvertOptions(styles=("google",), language="de", progress=False),
    )
    train, val = load_split(out, "train"), load_split(out, "val")
    assert train == [] and len(val) > 250  # nothing to train on: a held-out language stays unread
    texts = {s.current.alt: s.context[0].text for s in val}
    assert texts["😀"] == "grinsendes Gesicht" and texts["🐱"] == "Katzengesicht"
    assert all(s.candidates is not None and len(s.candidates) == len(val) for s in val)
    with pytest.raises(FileNotFoundError, match="no emojibase-data locale 'xx'"):
        convert(
            "emoji-names",
            tmp_path / "no-data",
            tmp_path / "xx",
            ConvertOptions(styles=("google",), language="xx"),
        )
