"""`stickerpick verify DIR` without a checkpoint or torch: manifest hashes and a smoke run of every tower."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from engine.model_check import check_model_dir
from engine.ranking import sha256_file

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "default"
runner = CliRunner()


def hashed_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["sha256"] = {n: sha256_file(dst / n) for n in manifest["files"].values()}
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


@pytest.mark.skipif(not (DEFAULT_MODEL / "manifest.json").is_file(), reason="no models/default")
def test_the_shipped_model_verifies_without_its_checkpoint(tmp_path, monkeypatch) -> None:
    check = check_model_dir(DEFAULT_MODEL)
    assert check.ok, check.as_dict()
    assert [t.name for t in check.towers] == [
        "text tower",
        "multilingual text tower",
        "image tower",
        "known pictures",
        "matching head",
    ]
    assert {f.name for f in check.files} == {
        "text.onnx",
        "tokenizer.json",
        "text_multilingual.onnx",
        "tokenizer_multilingual.json",
        "image.onnx",
        "match.onnx",
        "heads.npz",
        "pictures.npz",
    }
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["verify", str(DEFAULT_MODEL), "--json", "report.json"])
    assert result.exit_code == 0, result.output
    assert "best.pt" not in result.output and "PyTorch parity not checked" in result.output
    assert "image tower" in result.output and "tower tower" not in result.output
    assert json.loads(Path("report.json").read_text())["check"]["ok"] is True


def test_a_text_model_verifies(tmp_path, tiny_model_dir) -> None:
    check = check_model_dir(hashed_copy(tiny_model_dir, tmp_path / "m"))
    assert check.ok and [t.name for t in check.towers] == ["text tower", "sticker-text tower"], check


def test_a_damaged_or_missing_file_is_named_and_fails(tmp_path, tiny_model_dir) -> None:
    model = hashed_copy(tiny_model_dir, tmp_path / "m")
    data = bytearray((model / "text.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (model / "text.onnx").write_bytes(bytes(data))
    check = check_model_dir(model)
    assert not check.ok and check.towers == []  # a damaged file is not run
    assert {f.name: f.detail for f in check.files}["text.onnx"] == "sha256 differs from the manifest"
    result = runner.invoke(app, ["verify", str(model)])
    assert result.exit_code == 1 and "sha256 differs" in result.output and "damaged" in result.output

    (model / "tokenizer.json").unlink()
    result = runner.invoke(app, ["verify", str(model)])
    assert result.exit_code == 1 and "tokenizer" in result.output  # the manifest check names the file


def test_a_manifest_without_hashes_is_not_trusted(tiny_model_dir) -> None:
    check = check_model_dir(tiny_model_dir)
    assert not check.ok and {f.detail for f in check.files} == {"no hash in the manifest"}
