"""Issue 14: a model directory that is not what its manifest claims is refused when it loads, naming the
file, and a damaged image tower can never leave a pack `ready` without embeddings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.ranking import ModelMissing, _onnx, load_ranker, sha256_file
from engine.service import ChatRef, open_service
from engine.settings import REPO_ROOT

DEFAULT_MODEL = REPO_ROOT / "models" / "default"


def _with_hashes(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["sha256"] = {name: sha256_file(dst / name) for name in manifest["files"].values()}
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def test_an_altered_file_is_refused_naming_it(tiny_model_dir: Path, tmp_path: Path, monkeypatch):
    model = _with_hashes(tiny_model_dir, tmp_path / "model")
    assert load_ranker("auto", model).version
    hashed: list[Path] = []
    real = _onnx.sha256_file
    monkeypatch.setattr(_onnx, "sha256_file", lambda p: hashed.append(p) or real(p))
    load_ranker("auto", model)
    assert hashed == []  # unchanged files (same size and mtime) are not hashed again
    data = bytearray((model / "text.onnx").read_bytes())
    data[-100] ^= 0xFF  # one byte: the model still loads, and ranks nonsense
    (model / "text.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelMissing, match=r"text\.onnx does not match the SHA-256"):
        load_ranker("auto", model)


def test_a_garbage_model_file_is_one_clear_error(tiny_model_dir: Path, tmp_path: Path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)  # no hashes in this manifest: onnxruntime itself refuses it
    (model / "text.onnx").write_bytes(b"this is not an onnx file" * 100)
    with pytest.raises(ModelMissing, match=r"text\.onnx is not a model onnxruntime can load"):
        load_ranker("auto", model)


@pytest.mark.skipif(not (DEFAULT_MODEL / "manifest.json").is_file(), reason="the shipped PBR model")
async def test_a_truncated_image_tower_never_leaves_a_pack_ready(migrated, tmp_path: Path):
    from engine.library import EmbeddingFailed
    from tests.engine.test_service import make_pack

    model = tmp_path / "pbr"
    shutil.copytree(DEFAULT_MODEL, model)
    image = model / "image.onnx"
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    with pytest.raises(ModelMissing, match=r"image\.onnx does not match"):  # the manifest's hash catches it
        load_ranker("auto", model)
    manifest = json.loads((model / "manifest.json").read_text())
    del manifest["sha256"]["image.onnx"]  # a manifest without that hash: the image tower fails when used
    (model / "manifest.json").write_text(json.dumps(manifest))
    migrated.model_dir = model
    service = await open_service(migrated)
    try:
        with pytest.raises(EmbeddingFailed, match="not served"):
            await service.import_pack(make_pack(tmp_path / "food"), name="food")
        [info] = await service.list_packs()
        assert info.status == "importing"  # never served without embeddings
        chat = ChatRef("test", "g")
        await service.enable_pack(chat, "food")
        await service.record(chat, None, "pizza")
        assert not (await service.suggest(chat, cooldown=False)).items
    finally:
        await service.close()
