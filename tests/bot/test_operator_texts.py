"""The engine's start-up errors and unfinished packs arrive as facts; the CLI and the bots word the command that
fixes each, in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app, explain
from bot.cli.packs import resume_hint
from bot.operator_texts import model_missing, schema_out_of_date, startup_error
from engine.errors import ModelKind, ModelMissing, ModelProblem, SchemaOutOfDate
from engine.ranking import PBRRanker, TextBaselineRanker, load_ranker
from engine.service import PackInfo

runner = CliRunner()
COMMAND_WORDS = ("stickerpick", "/addpack", "db upgrade", "packs add", "setup")


def _refusal(load, model_dir: Path) -> ModelMissing:
    with pytest.raises(ModelMissing) as refused:
        load(model_dir)
    assert not any(word in str(refused.value) for word in COMMAND_WORDS)  # the engine names no command
    return refused.value


def test_a_missing_model_names_the_command_that_builds_it(tmp_path: Path):
    empty = tmp_path / "none"
    served = _refusal(lambda d: load_ranker("auto", d), empty)
    assert (served.model_dir, served.problem, served.kind) == (empty, ModelProblem.NO_MANIFEST, None)
    assert model_missing(served) == (
        f"No model at {empty} (missing manifest.json). Build it with: stickerpick setup"
    )
    baseline = _refusal(TextBaselineRanker, empty)
    assert baseline.kind is ModelKind.BASELINE
    assert model_missing(baseline).endswith(
        "Build it with: stickerpick setup  (or: stickerpick export baseline)"
    )
    pbr = _refusal(PBRRanker, empty)
    assert pbr.kind is ModelKind.PBR and "stickerpick export CHECKPOINT OUT_DIR" in model_missing(pbr)
    # a directory of no particular kind is worded with the caller's command
    assert model_missing(served, build="stickerpick export").endswith("Build it with: stickerpick export")
    assert explain(served, None) == startup_error(served) == model_missing(served)


def test_a_damaged_model_says_which_file_and_how_to_rebuild(tiny_model_dir: Path, tmp_path: Path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    manifest = json.loads((model / "manifest.json").read_text())
    text_file = manifest["files"]["text"]
    (model / text_file).unlink()
    refused = _refusal(lambda d: load_ranker("auto", d), model)
    assert (refused.problem, refused.file, refused.role) == (ModelProblem.MISSING_FILE, text_file, "text")
    assert model_missing(refused) == (
        f"{model} lacks its text file {text_file}. Rebuild it with: stickerpick setup"
    )
    wrong = _refusal(lambda d: load_ranker("pbr", d), tiny_model_dir)  # a setting to fix, not a rebuild
    assert wrong.problem is ModelProblem.WRONG_KIND and model_missing(wrong) == str(wrong)


def test_an_old_schema_names_the_upgrade_command():
    exc = SchemaOutOfDate("sqlite+aiosqlite:///x.db", "abc", "def")
    assert "stickerpick" not in str(exc) and (exc.current, exc.head) == ("abc", "def")
    line = schema_out_of_date(exc)
    assert line == startup_error(exc) == explain(exc, None)
    assert line == (
        "The database sqlite+aiosqlite:///x.db is at revision abc; this version needs revision def. "
        "Run `stickerpick db upgrade` first."
    )


def test_verify_names_the_exporter_for_a_directory_without_a_model(tmp_path: Path):
    result = runner.invoke(app, ["verify", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert "missing manifest.json" in result.output and "Build it with: stickerpick export" in result.output


def test_the_cli_words_how_an_unfinished_import_is_finished(tmp_path: Path):
    def pack(**kw: object) -> PackInfo:
        fields: dict = {"name": "big", "title": None, "platform": "local", "stickers": 8, "enabled": True}
        return PackInfo(**(fields | kw))

    assert resume_hint(pack()) is None and not pack().unfinished
    folder = tmp_path / "my packs" / "big"
    unfinished = pack(status="importing", source=str(folder))
    assert unfinished.unfinished
    assert resume_hint(unfinished) == f"run `stickerpick packs add '{folder}' --name big` again to finish it"
    assert (
        resume_hint(pack(status="importing"))
        == "run `stickerpick packs add PATH --name big` again to finish it"
    )
    platform = pack(status="importing", platform="telegram", source="pizza_by_bot")
    assert resume_hint(platform) == "add the set again to finish it"
