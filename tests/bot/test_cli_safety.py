"""Issue 14 through the real CLI: what an operator can destroy with `data export --overwrite`, and what a
`/logging on` lets out of a chat."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
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


# ------------------------------------------------------------------ operator errors: one line, no traceback
def _main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str, stdin: str = ""
) -> tuple:
    """The console script itself (bot.cli.main, as `stickerpick ARGS`): its exit status and stderr."""
    import io

    from bot import cli

    monkeypatch.setattr(cli, "_debug", False)
    monkeypatch.setattr(sys, "argv", ["stickerpick", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as exc:
        cli.main()
    captured = capsys.readouterr()
    return exc.value.code, captured.err, captured.out


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only even for root (chattr +i where we are root on ext4, else chmod)."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("cannot make a folder read-only for root here (no chattr)")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)


def test_a_read_only_home_is_one_line_and_debug_shows_the_traceback(home: Path, monkeypatch, capsys):
    for f in home.glob("stickerpick.db-*"):  # a clean shutdown: no WAL files; SQLite must create them
        f.unlink()
    with _read_only(home):
        code, stderr, _ = _main(monkeypatch, capsys, "chat", "--chat", "g3", stdin="alice: hi\n")
        assert code == 1
        line = _one_line(stderr)
        assert "writable" in line and str(home) in line and "--debug" in line
        monkeypatch.setattr(sys, "argv", ["stickerpick", "--debug", "chat", "--chat", "g3"])
        from sqlalchemy.exc import OperationalError

        from bot import cli

        with pytest.raises(OperationalError):  # the traceback, for whoever asked for it
            cli.main()


def test_a_deleted_media_folder_is_one_line(home: Path, monkeypatch, capsys):
    shutil.rmtree(home / "media")
    code, stderr, _ = _main(monkeypatch, capsys, "chat", "--chat", "g3", stdin="alice: pizza\n/sticker\n")
    assert code == 1
    line = _one_line(stderr)
    assert "media store is missing" in line and "packs add" in line


def test_a_garbage_model_is_one_line(home: Path, tmp_path: Path, monkeypatch, capsys, tiny_model_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "text.onnx").write_bytes(b"\x00garbage" * 64)
    monkeypatch.setenv("STICKERPICK_MODEL_DIR", str(model))
    code, stderr, _ = _main(monkeypatch, capsys, "packs", "list")
    assert code == 1 and "text.onnx" in _one_line(stderr)


def test_a_chat_name_that_is_not_utf8_is_refused_clearly(home: Path, monkeypatch, capsys):
    code, stderr, _ = _main(monkeypatch, capsys, "chat", "--chat", "\udcff")  # what `--chat $'\xff'` gives
    assert code == 2 and "UTF-8" in stderr and "Traceback" not in stderr


def test_a_full_disk_is_one_line(home: Path, tmp_path: Path):
    """A file-size limit stands in for a full disk (SQLite and the media store see the same write error)."""
    import resource

    from PIL import Image

    big = tmp_path / "noise"
    big.mkdir()
    for i in range(3):  # random pixels: each stored PNG is about 260 KB
        Image.frombytes("RGBA", (256, 256), os.urandom(256 * 256 * 4)).save(big / f"{i}-😀.png")

    def limit() -> None:  # no file may grow past 100 KB, as if the disk had filled up
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "packs", "add", str(big)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    line = [x for x in result.stderr.splitlines() if x.strip()][-1]  # after the progress bar
    assert "Traceback" not in result.stderr and "no space left" in line, result.stderr
