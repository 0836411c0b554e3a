"""Issue 14 through the real CLI: what an operator can destroy with `data export --overwrite`, and what a
`/logging on` lets out of a chat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.engine.test_service import make_pack

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("STICKERPICK_HOME", str(home))
    monkeypatch.setenv("STICKERPICK_MODEL_DIR", str(tiny_model_dir))
    monkeypatch.setenv("STICKERPICK_DEFAULT_PACKS", "[]")
    monkeypatch.setenv("STICKERPICK_STICKER_COOLDOWN_S", "0")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["packs", "add", str(make_pack(tmp_path / "food")), "--chat", "g3"])
    assert result.exit_code == 0, result.output
    return home


def _chat(lines: str, chat: str = "g3") -> str:
    result = runner.invoke(app, ["chat", "--chat", chat], input=lines)
    assert result.exit_code == 0, result.output
    return result.output


def test_overwrite_replaces_only_a_previous_export(home: Path, tmp_path: Path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("years of work")
    for target in (thesis, home, home / "media", tmp_path):
        result = runner.invoke(app, ["data", "export", str(target), "--overwrite"])
        assert result.exit_code == 1, (target, result.output)
        assert "Traceback" not in result.output
    assert (thesis / "chapter1.tex").read_text() == "years of work"
    assert (home / "stickerpick.db").is_file() and (home / "media").is_dir()
    # without --overwrite an existing folder is refused with one line, not a FileExistsError
    result = runner.invoke(app, ["data", "export", str(thesis)])
    assert result.exit_code == 1 and "--overwrite" in result.output
    # a previous export is recognised by its marker and may be replaced
    out = tmp_path / "export"
    assert runner.invoke(app, ["data", "export", str(out)]).exit_code == 0
    assert (out / ".stickerpick-export").is_file()
    result = runner.invoke(app, ["data", "export", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert (out / ".stickerpick-export").is_file()


def test_logging_on_keeps_nothing_written_before_the_opt_in(home: Path, tmp_path: Path):
    _chat("alice: PRE_OPTIN pizza with cheese\n/logging on\n/send pizza\n")
    _chat("bob: AFTER_OPTIN birthday cake\n/send cake\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["data", "export", str(out)])
    assert result.exit_code == 0, result.output
    written = "".join(p.read_text(encoding="utf-8") for p in out.glob("*.json"))
    assert "PRE_OPTIN" not in written
    assert "AFTER_OPTIN" in written  # what was said while logging was on is kept
    assert json.loads((out / "export.json").read_text())["chats"] == 1


def test_packs_add_shows_hostile_names_escaped_and_bad_pack_json_in_one_line(home: Path, tmp_path: Path):
    import zipfile

    from tests.auxil import media

    source = tmp_path / "ansi.zip"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("1f600.png", media.png_bytes())
        zf.writestr("\x1b[2J\x1b]0;pwned\x07[red]x.png", media.not_an_image())
    result = runner.invoke(app, ["packs", "add", str(source)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\\x1b[2J" in result.output and "[red]x.png" in result.output  # shown, not obeyed
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "1f600.png").write_bytes(media.png_bytes())
    (bad / "pack.json").write_text('{"stickers": 7}')
    result = runner.invoke(app, ["packs", "add", str(bad)])
    assert result.exit_code == 1
    assert "pack.json: stickers" in result.output and "Traceback" not in result.output
