from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.console import DEMO_SCRIPT

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["demo"],
        ["chat"],
        ["setup"],
        ["packs"],
        ["packs", "add"],
        ["packs", "list"],
        ["packs", "remove"],
        ["db"],
        ["db", "upgrade"],
        ["db", "downgrade"],
        ["export"],
        ["verify"],
        ["eval"],
    ],
)
def test_every_command_has_help(args):
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_cli_end_to_end_on_a_tiny_model(tmp_path, monkeypatch, tiny_model_dir):
    from tests.engine.test_service import make_pack

    monkeypatch.setenv("STICKERPICK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STICKERPICK_MODEL_DIR", str(tiny_model_dir))
    monkeypatch.setenv("STICKERPICK_DEFAULT_PACKS", "[]")
    result = runner.invoke(app, ["packs", "list"])
    assert result.exit_code == 1 and "stickerpick db upgrade" in result.output
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["packs", "add", str(make_pack(tmp_path / "food")), "--chat", "demo"])
    assert result.exit_code == 0, result.output
    assert "5 added" in result.output
    result = runner.invoke(app, ["packs", "add", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "does not exist" in result.output
    assert "food" in runner.invoke(app, ["packs", "list"]).output
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    requests = sum(1 for step in DEMO_SCRIPT if isinstance(step, tuple))
    assert result.output.count("Stickers for:") == requests, result.output  # no cooldown message in the demo
    assert len(list((tmp_path / "out").glob("suggestion-*.png"))) == requests
    result = runner.invoke(app, ["packs", "remove", "food"])
    assert result.exit_code == 0 and "5 stickers" in result.output
