"""Naming a pack's stickers together (the bank's ``pack-vote`` naming, engine/ranking/_pbr.py): a sticker's
nearest pictures vote across art styles, a sticker takes its vote only where no pack-mate holds that emoji,
and the engine embeds every pack whole, again when it grows, so that a sticker's stored vector always
matches the pack it is in.

The bank here is written by hand around the tiny model's own image vectors, so that each rule is tested by a
picture it decides: X is nearest to 🅰 (one style) but 🅱 is close in all three styles; Y is nearest to 🅱."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from engine.db import Sticker, StickerEmbedding
from engine.ranking import PBRRanker, StickerInput, per_pack, read_manifest, sha256_file
from export.pbr import export_pbr
from export.pictures import PICTURES_FILE, add_pictures
from tests.auxil.media import png_bytes
from training.model import build_tiny_pbr, save_checkpoint

A, B = "🅰️", "🅱️"


def _picture(colour: tuple[int, int, int]) -> Image.Image:
    return Image.open(io.BytesIO(png_bytes(48, 48, (*colour, 255)))).convert("RGBA")


X_COLOUR, Y_COLOUR = (30, 90, 220), (240, 200, 20)


def _bank_around(vx: np.ndarray, vy: np.ndarray) -> dict[str, np.ndarray]:
    """Bank vectors placed by cosine around X's and Y's image vectors (see the module's docstring)."""
    a = float(vx @ vy)
    u = vy - a * vx
    b = float(np.linalg.norm(u))
    assert b > 0.01, f"the tiny model draws X and Y alike (cosine {a}): the bank cannot tell them apart"
    u /= b
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(np.stack([vx, u, *rng.normal(size=(2, vx.shape[0]))], axis=1))
    e1, e2, e3, e4 = vx, u, basis[:, 2], basis[:, 3]  # orthonormal: X's direction, Y's departure from it

    def at(c: float, s: float, axis: np.ndarray) -> np.ndarray:
        return c * e1 + s * axis

    rows = [
        (at(0.72, -np.sqrt(1 - 0.72**2), e2), A, "google"),  # X's nearest (0.72); Y's is lower
        (at(0.71, np.sqrt(1 - 0.71**2), e2), B, "google"),  # X: 0.71; Y: its nearest
        (at(0.715, np.sqrt(1 - 0.715**2), e3), B, "twitter"),  # X: 0.715
        (at(0.715, np.sqrt(1 - 0.715**2), e4), B, "openmoji"),  # X: 0.715: 🅱 outvotes 🅰 for X
    ]
    return {
        "vectors": np.stack([v for v, _, _ in rows]).astype(np.float16),
        "emoji": np.array([e for _, e, _ in rows]),
        "style": np.array([s for _, _, s in rows]),
    }


def _with_bank(src: Path, out: Path, arrays: dict[str, np.ndarray], naming: str) -> Path:
    """``src`` with a bank of the right layout (add_pictures), its vectors then replaced by ``arrays``."""
    dummy = [(_picture((0, 0, 0)), A, "google")]
    add_pictures(src, out, pictures=dummy, threshold=0.5, pull=0.5, naming=naming)
    np.savez(out / PICTURES_FILE, **arrays)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["sha256"][PICTURES_FILE] = sha256_file(out / PICTURES_FILE)
    manifest["pictures"]["count"] = len(arrays["emoji"])
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("vote")
    ckpt = save_checkpoint(tmp / "tiny.pt", build_tiny_pbr(seed=3, use_sticker_text=True).eval())
    export_pbr(ckpt, tmp / "plain", quantize=False)
    plain = PBRRanker(tmp / "plain")
    vx, vy = plain.image_vectors([_picture(X_COLOUR), _picture(Y_COLOUR)])
    arrays = _bank_around(vx, vy)
    return {
        "plain": tmp / "plain",
        "vote": _with_bank(tmp / "plain", tmp / "vote", arrays, "pack-vote"),
        "nearest": _with_bank(tmp / "plain", tmp / "nearest", arrays, "nearest"),
        "tmp": tmp,
    }


def test_the_vote_names_a_sticker_by_what_every_style_agrees_on_unless_a_pack_mate_holds_it(
    models: dict[str, Path],
) -> None:
    vote, nearest = PBRRanker(models["vote"]), PBRRanker(models["nearest"])
    assert vote.names_per_pack and per_pack(vote) is vote
    assert not nearest.names_per_pack and per_pack(nearest) is None
    vx, vy = vote.image_vectors([_picture(X_COLOUR), _picture(Y_COLOUR)])
    assert nearest.nearest_known(np.stack([vx])) == [A]  # the one nearest picture
    assert vote.nearest_known(np.stack([vx])) == [B]  # three styles agree on 🅱
    assert nearest.nearest_known(np.stack([vx, vy])) == [A, B]
    assert vote.nearest_known(np.stack([vx, vy])) == [A, B]  # Y holds 🅱: X keeps its own
    # two stickers that vote alike: the higher vote takes the emoji, the other keeps its nearest
    assert vote.nearest_known(np.stack([vx, vx])) == [B, A]


def test_the_vote_is_part_of_the_version_and_the_manifest(models: dict[str, Path]) -> None:
    vote, nearest = read_manifest(models["vote"]), read_manifest(models["nearest"])
    assert vote["pictures"]["naming"] == "pack-vote" and nearest["pictures"]["naming"] == "nearest"
    assert vote["pictures"]["vote_top"] == 10 and vote["pictures"]["keep_exact"] == 0.98
    assert vote["version"] != nearest["version"]
    # the image vectors belong to the image tower: another bank setting keeps their key, another tower does not
    assert PBRRanker(models["vote"]).image_key == PBRRanker(models["nearest"]).image_key
    other = models["tmp"] / "other-tower"
    ckpt = save_checkpoint(models["tmp"] / "other.pt", build_tiny_pbr(seed=4, use_sticker_text=True).eval())
    export_pbr(ckpt, other, quantize=False)
    assert PBRRanker(other).image_key != PBRRanker(models["vote"]).image_key
    with pytest.raises(ValueError, match="naming"):
        add_pictures(
            models["plain"], models["tmp"] / "bad", pictures=[(_picture((0, 0, 0)), A, "google")], naming="x"
        )
    assert not (models["tmp"] / "bad").exists()
    odd = models["tmp"] / "odd"
    shutil.copytree(models["vote"], odd)
    manifest = json.loads((odd / "manifest.json").read_text())
    manifest["pictures"]["naming"] = "by-colour"
    (odd / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="by-colour"):
        PBRRanker(odd)


def _write_pack(root: Path, colours: list[tuple[int, int, int]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    stickers = []
    for i, colour in enumerate(colours):
        (root / f"s{i}.png").write_bytes(png_bytes(48, 48, (*colour, 255)))
        stickers.append({"file": f"s{i}.png", "id": f"s{i}"})  # no emoji, no tags: named by the bank
    (root / "pack.json").write_text(json.dumps({"name": "faces", "title": "Faces", "stickers": stickers}))
    return root


async def _stored(service, sticker: str) -> np.ndarray:
    async with service.sessions() as session:
        row = (
            await session.execute(
                select(StickerEmbedding.vector)
                .join(Sticker, Sticker.id == StickerEmbedding.sticker_id)
                .where(
                    Sticker.platform_sticker_id == sticker,
                    StickerEmbedding.model_version == service.ranker.version,
                )
            )
        ).scalar_one()
    return np.frombuffer(row, dtype="<f4")


@pytest.mark.parametrize("naming", ["pack-vote", "nearest"])
async def test_a_grown_pack_is_embedded_again_whole(
    naming: str, models: dict[str, Path], tmp_path: Path, database_url: str
) -> None:
    from engine.service import open_service
    from engine.settings import Settings
    from migrations import run_upgrade

    model = models["vote" if naming == "pack-vote" else "nearest"]
    settings = Settings(
        _env_file=None, home=tmp_path / "home", DATABASE_URL=database_url, model_dir=model, default_packs=[]
    )
    await asyncio.to_thread(run_upgrade, settings.db_url)  # it runs its own event loop
    ranker = PBRRanker(model)
    x, y = StickerInput(_picture(X_COLOUR)), StickerInput(_picture(Y_COLOUR))
    service = await open_service(settings)
    try:
        await service.import_pack(_write_pack(tmp_path / "p1", [X_COLOUR]), name="faces")
        alone = await _stored(service, "s0")
        np.testing.assert_allclose(alone, ranker.embed_stickers([x])[0], atol=1e-5)
        served = service.ranker
        tower, pictures_seen = served.image_vectors, []

        def counted(images):  # the real image tower, counting the pictures it reads
            pictures_seen.append(len(images))
            return tower(images)

        served.image_vectors = counted
        report = await service.import_pack(_write_pack(tmp_path / "p2", [X_COLOUR, Y_COLOUR]), name="faces")
        assert report.added == 1 and report.unchanged == 1
        if naming == "pack-vote":  # the whole pack fused again, but only the new picture read by the tower
            assert pictures_seen == [1]
        with_y = await _stored(service, "s0")
        np.testing.assert_allclose(with_y, ranker.embed_stickers([x, y])[0], atol=1e-5)
        np.testing.assert_allclose(await _stored(service, "s1"), ranker.embed_stickers([x, y])[1], atol=1e-5)
        held = service.embeddings.vectors(service.ranker.version)
        async with service.sessions() as session:
            sid = (
                await session.execute(select(Sticker.id).where(Sticker.platform_sticker_id == "s0"))
            ).scalar_one()
        np.testing.assert_allclose(held[sid], with_y, atol=1e-6)  # the memory cache too
        if naming == "pack-vote":  # Y took 🅱 from X: X's vector is X named 🅰 now
            assert not np.allclose(alone, with_y, atol=1e-3)
        else:  # named one by one, X never depended on Y
            np.testing.assert_allclose(alone, with_y, atol=1e-6)
    finally:
        await service.close()
