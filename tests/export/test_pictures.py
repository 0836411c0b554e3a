"""The bank of known pictures (export/pictures.py): a sticker without text is named by its nearest known
picture, through the fusion gate; a sticker with text keeps its own; the bank is a hashed model file, only of
training art, and switching it off changes the version that keys stored embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import ModelMissing
from engine.ranking import PBRRanker, StickerInput, load_ranker, read_manifest
from export.pbr import export_pbr
from export.pictures import PICTURES_FILE, add_pictures, known_pictures
from tests.training.test_convert import node_modules as _fake_node_modules  # noqa: F401 (fixture)
from training.data.emoji_art import TRAIN_STYLES
from training.model import build_tiny_pbr, save_checkpoint


def _picture(colour: tuple[int, int, int], shape: str) -> Image.Image:
    from PIL import ImageDraw

    im = Image.new("RGBA", (48, 48), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    (d.ellipse if shape == "circle" else d.rectangle)((6, 6, 42, 42), fill=(*colour, 255))
    return im


BANK = [
    (_picture((30, 90, 220), "circle"), "😢", "google"),
    (_picture((240, 200, 20), "square"), "😂", "twitter"),
    (_picture((220, 20, 40), "circle"), "❤️", "openmoji"),
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("pictures")
    ckpt = save_checkpoint(tmp / "tiny.pt", build_tiny_pbr(seed=3, use_sticker_text=True).eval())
    export_pbr(ckpt, tmp / "plain", quantize=False)
    add_pictures(tmp / "plain", tmp / "named", pictures=BANK, threshold=0.0, pull=0.0)  # naming only
    return {"plain": tmp / "plain", "named": tmp / "named", "tmp": tmp}


def test_the_bank_is_a_hashed_model_file_and_a_new_version(models: dict[str, Path]) -> None:
    plain = read_manifest(models["plain"], verify_hashes=True)
    named = read_manifest(models["named"], verify_hashes=True)
    assert named["files"]["pictures"] == PICTURES_FILE and "pictures" not in plain["files"]
    assert named["version"] != plain["version"]
    assert named["pictures"]["count"] == 3
    assert named["pictures"]["styles"] == {"google": 1, "openmoji": 1, "twitter": 1}
    with np.load(models["named"] / PICTURES_FILE) as bank:
        assert bank["vectors"].shape == (3, plain["embedding_dim"]) and bank["vectors"].dtype == np.float16
        assert bank["emoji"].tolist() == ["😢", "😂", "❤️"]

    tampered = models["tmp"] / "tampered"
    add_pictures(models["plain"], tampered, pictures=BANK)
    with np.load(tampered / PICTURES_FILE) as bank:
        arrays = {k: bank[k] for k in bank.files}
    arrays["emoji"] = np.array(["😂", "😢", "❤️"])  # the names swapped: every text-less sticker misnamed
    np.savez(tampered / PICTURES_FILE, **arrays)
    with pytest.raises(ModelMissing, match=r"pictures\.npz"):
        load_ranker("auto", tampered)


def test_a_bank_made_by_another_image_tower_is_refused_with_what_rebuilds_it(
    models: dict[str, Path],
) -> None:
    import shutil

    from bot.operator_texts import model_missing
    from engine.errors import ModelProblem

    stale = models["tmp"] / "stale"
    shutil.copytree(models["named"], stale)
    manifest = json.loads((stale / "manifest.json").read_text())
    manifest["pictures"]["image_tower"] = "0" * 64  # the image tower was swapped, the bank was not rebuilt
    (stale / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelMissing) as caught:
        PBRRanker(stale)
    assert caught.value.problem is ModelProblem.MISMATCHED_FILE
    line = model_missing(caught.value)
    assert "pictures.npz" in line and "python -m export.pictures" in line and "\n" not in line
    # the remedy works: with the bank off the directory opens, so the bank can be built again
    assert not PBRRanker(stale, name_pictures=False).names_pictures
    add_pictures(stale, pictures=BANK)
    assert PBRRanker(stale).names_pictures


def test_a_sticker_without_text_is_named_by_its_nearest_known_picture(models: dict[str, Path]) -> None:
    named, plain = PBRRanker(models["named"]), PBRRanker(models["plain"])
    assert named.names_pictures and not plain.names_pictures
    sad, laugh = BANK[0][0], BANK[1][0]
    # each bank picture, drawn again, is nearest to itself
    vectors, _ = named.embed_images([sad, laugh])
    assert named.nearest_known(vectors) == ["😢", "😂"]
    got = named.embed_stickers([StickerInput(sad), StickerInput(laugh)])
    want = plain.embed_stickers([StickerInput(sad, "😢"), StickerInput(laugh, "😂")])
    np.testing.assert_allclose(got, want, atol=1e-6)
    image_only = plain.embed_stickers([StickerInput(sad)])
    assert not np.allclose(got[0], image_only[0], atol=1e-3)  # the name moved it

    # a sticker with its own text keeps it: the bank does not overrule the pack's author
    own = [StickerInput(sad, "🔥"), StickerInput(laugh, None, ("pizza",))]
    np.testing.assert_allclose(named.embed_stickers(own), plain.embed_stickers(own), atol=1e-6)


def test_pull_moves_a_sticker_toward_its_nearest_known_picture(models: dict[str, Path]) -> None:
    pulled_dir = models["tmp"] / "pulled"
    manifest = add_pictures(models["plain"], pulled_dir, pictures=BANK, threshold=0.0, pull=1.0)
    assert manifest["pictures"]["pull"] == 1.0
    assert manifest["version"] != read_manifest(models["named"])["version"]  # same bank, other settings
    pulled, named, plain = PBRRanker(pulled_dir), PBRRanker(models["named"]), PBRRanker(models["plain"])
    assert pulled.picture_pull == 1.0 and named.picture_pull == 0.0
    # a sad face drawn in another style: a darker blue, and smaller
    other = Image.new("RGBA", (48, 48), (0, 0, 0, 0))
    from PIL import ImageDraw

    ImageDraw.Draw(other).ellipse((10, 10, 38, 38), fill=(20, 60, 160, 255))
    sticker = [StickerInput(other, "🔥")]  # with text of its own: the pull still moves its picture
    image = plain.embed_images([other])[0][0]
    with np.load(pulled_dir / PICTURES_FILE) as bank:
        vectors = bank["vectors"].astype(np.float32)
    nearest = int((image @ vectors.T).argmax())
    moved = image + vectors[nearest]
    moved /= np.linalg.norm(moved)
    assert float(moved @ vectors[nearest]) > float(image @ vectors[nearest])
    got, unpulled = pulled.embed_stickers(sticker), named.embed_stickers(sticker)
    assert not np.allclose(got, unpulled, atol=1e-4)
    # and the fused vector moves toward that known picture fused with the sticker's own text
    target = plain.embed_stickers([StickerInput(BANK[nearest][0], "🔥")])[0]
    assert float(got[0] @ target) > float(unpulled[0] @ target)


def test_a_pull_outside_its_range_is_refused(models: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="pull"):
        add_pictures(models["plain"], models["tmp"] / "bad-pull", pictures=BANK, pull=-1.0)
    assert not (models["tmp"] / "bad-pull").exists()


def test_a_picture_far_from_every_known_one_stays_unnamed(models: dict[str, Path]) -> None:
    strict = models["tmp"] / "strict"
    add_pictures(models["plain"], strict, pictures=BANK, threshold=1.01)  # no cosine reaches it
    ranker, plain = PBRRanker(strict), PBRRanker(models["plain"])
    sad = BANK[0][0]
    assert ranker.nearest_known(ranker.embed_images([sad])[0]) == [None]
    np.testing.assert_allclose(
        ranker.embed_stickers([StickerInput(sad)]), plain.embed_stickers([StickerInput(sad)]), atol=1e-6
    )


def test_switched_off_the_vectors_and_the_version_are_the_image_alones(models: dict[str, Path]) -> None:
    off = load_ranker("auto", models["named"], name_pictures=False)
    on = load_ranker("auto", models["named"])
    assert isinstance(off, PBRRanker) and not off.names_pictures
    assert off.version == on.version + "+unnamed"
    sad = BANK[0][0]
    np.testing.assert_allclose(
        off.embed_stickers([StickerInput(sad)]),
        PBRRanker(models["plain"]).embed_stickers([StickerInput(sad)]),
        atol=1e-6,
    )


def test_the_bank_is_only_training_art(_fake_node_modules: Path, tmp_path: Path) -> None:  # noqa: F811
    pictures = known_pictures(_fake_node_modules)
    styles = {style for _, _, style in pictures}
    assert styles and styles <= set(TRAIN_STYLES) and "facebook" not in styles
    assert all(path.is_file() for path, _, _ in pictures)
    assert {e for _, e, _ in pictures} >= {"😂", "🐶"}
    with pytest.raises(ValueError, match="facebook"):
        known_pictures(_fake_node_modules, styles=["facebook"])


def test_the_command_adds_a_bank_in_place(models: dict[str, Path], _fake_node_modules: Path) -> None:  # noqa: F811
    from export.pictures import main

    target = models["tmp"] / "in-place"
    add_pictures(models["plain"], target, pictures=BANK)  # a copy to rewrite
    main([str(target), "--node-modules", str(_fake_node_modules), "--threshold", "0.8", "--pull", "0.3"])
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["pictures"]["threshold"] == 0.8 and manifest["pictures"]["pull"] == 0.3
    assert PBRRanker(target).picture_threshold == 0.8
    assert manifest["pictures"]["naming"] == "pack-vote" and PBRRanker(target).names_per_pack  # the default
    main([str(target), "--node-modules", str(_fake_node_modules), "--naming", "nearest"])
    assert json.loads((target / "manifest.json").read_text())["pictures"]["naming"] == "nearest"
    assert not PBRRanker(target).names_per_pack
    with pytest.raises(SystemExit):
        main([str(target), "--node-modules", str(_fake_node_modules), "--naming", "by-colour"])
    assert manifest["pictures"]["count"] == len(known_pictures(_fake_node_modules)) > 3


def test_a_retraining_candidate_gets_the_serving_banks_art_embedded_by_its_own_tower(
    models: dict[str, Path],
    _fake_node_modules: Path,  # noqa: F811
) -> None:
    import shutil

    from export.pictures import carry_pictures

    candidate = models["tmp"] / "candidate"
    shutil.copytree(models["plain"], candidate)
    assert carry_pictures(models["plain"], candidate, _fake_node_modules) is None  # nothing to carry
    assert "pictures" not in read_manifest(candidate)["files"]
    serving = models["tmp"] / "serving"
    add_pictures(
        models["plain"], serving, node_modules=_fake_node_modules, threshold=0.6, pull=0.25, naming="nearest"
    )
    manifest = carry_pictures(serving, candidate, _fake_node_modules)
    assert manifest is not None and manifest["pictures"]["threshold"] == 0.6
    assert manifest["pictures"]["naming"] == "nearest"  # the serving bank's naming, not the default
    assert manifest["pictures"]["pull"] == 0.25 and PBRRanker(candidate).picture_pull == 0.25
    assert manifest["pictures"]["styles"] == read_manifest(serving)["pictures"]["styles"]
    read_manifest(candidate, verify_hashes=True)
    assert PBRRanker(candidate).names_pictures
    from engine.model_check import check_model_dir

    report = check_model_dir(candidate)
    assert report.ok and "known pictures" in [t.name for t in report.towers]


def test_stickerpick_export_adds_the_bank_and_says_so_when_the_art_is_missing(
    models: dict[str, Path],
    _fake_node_modules: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from bot.cli import app
    from training.data import emoji_art

    ckpt, out = str(models["tmp"] / "tiny.pt"), models["tmp"] / "cli"
    runner = CliRunner()
    monkeypatch.setattr(emoji_art, "DEFAULT_NODE_MODULES", _fake_node_modules)
    result = runner.invoke(app, ["export", ckpt, str(out / "with"), "--fp32"])
    assert result.exit_code == 0, result.output
    assert read_manifest(out / "with", verify_hashes=True)["pictures"]["count"] == len(
        known_pictures(_fake_node_modules)
    )
    result = runner.invoke(app, ["export", ckpt, str(out / "without"), "--fp32", "--no-pictures"])
    assert result.exit_code == 0 and "pictures" not in read_manifest(out / "without")["files"]

    monkeypatch.setattr(emoji_art, "DEFAULT_NODE_MODULES", models["tmp"] / "no-art")
    result = runner.invoke(app, ["export", ckpt, str(out / "no-art"), "--fp32"])
    assert result.exit_code == 0, result.output
    assert "no bank of known pictures" in result.output and "bash dev.sh setup" in result.output
    assert "Traceback" not in result.output and "pictures" not in read_manifest(out / "no-art")["files"]
