"""The CLI as an operator meets it: --version, bad configuration, quiet output, --verbose."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bot.cli import app
from bot.console import DEMO_SCRIPT

runner = CliRunner()


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("STICKERPICK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no developer .env
    return tmp_path


def test_version() -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"stickerpick {version('stickerpick')}"


def test_a_bad_setting_is_one_line_per_field_and_no_traceback(monkeypatch) -> None:
    monkeypatch.setenv("STICKERPICK_RANKER", "bogus")
    monkeypatch.setenv("STICKERPICK_TOP_K", "[five]")  # brackets are shown as typed, not taken as markup
    result = runner.invoke(app, ["db", "current"])
    assert result.exit_code == 2
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2, result.output
    assert "STICKERPICK_RANKER" in errors[0] and "'text-baseline'" in errors[0]
    assert "STICKERPICK_TOP_K" in errors[1] and "(got '[five]')" in errors[1]
    assert "Traceback" not in result.output and "pydantic" not in result.output.lower()
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_list_setting_that_is_not_json_is_one_line(monkeypatch) -> None:
    monkeypatch.setenv("STICKERPICK_DISCORD_GUILD_IDS", "[general]")
    result = runner.invoke(app, ["db", "current"])
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert errors[0].startswith("error: STICKERPICK_DISCORD_GUILD_IDS: expected JSON"), errors
    assert "Traceback" not in result.output and "pydantic" not in result.output.lower()
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_retrainings_settings_are_checked_by_the_commands_that_read_them(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("STICKERPICK_RETRAIN_EPOCHS", "0")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0  # serving commands never read them
    result = runner.invoke(app, ["data", "export", str(tmp_path / "logs")])
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert errors[0].startswith("error: STICKERPICK_RETRAIN_EPOCHS:") and "(got '0')" in errors[0]
    assert "Traceback" not in result.output and not (tmp_path / "logs").exists()


def test_normal_output_hides_library_info_and_warnings_verbose_shows_them(capfd) -> None:
    import warnings

    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    logging.getLogger("onnxruntime.quantization").info("Quantization parameters for tensor x")
    logging.info("root logger info (onnxruntime's quantiser logs there)")
    logging.getLogger("apscheduler.scheduler").info("Scheduler started")
    logging.warning("Please consider to run pre-processing before quantization")  # onnxruntime, on root
    logging.getLogger("transformers.modeling_utils").warning("`torch_dtype` is deprecated!")
    warnings.warn("a TracerWarning stand-in", UserWarning, stacklevel=1)
    logging.getLogger("engine.service").info("our own progress line")
    quiet = capfd.readouterr().err
    assert "our own progress line" in quiet
    noises = (
        "Quantization parameters",
        "root logger info",
        "Scheduler started",
        "TracerWarning",
        "pre-proc",
        "dtype",
    )
    for noise in noises:
        assert noise not in quiet

    assert runner.invoke(app, ["--verbose", "db", "upgrade"]).exit_code == 0
    logging.info("root logger info (onnxruntime's quantiser logs there)")
    warnings.warn("a TracerWarning stand-in", UserWarning, stacklevel=1)
    logging.getLogger("engine.service").debug("our debug line")
    loud = capfd.readouterr().err
    assert "root logger info" in loud and "TracerWarning stand-in" in loud and "our debug line" in loud


def test_json_logs(capfd, monkeypatch) -> None:
    import json

    monkeypatch.setenv("STICKERPICK_LOG_FORMAT", "json")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    logging.getLogger("engine.service").warning("suggested %d stickers", 3, extra={"chat": 42})
    line = capfd.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["level"] == "WARNING" and record["logger"] == "engine.service"
    assert record["message"] == "suggested 3 stickers" and record["chat"] == 42 and "time" in record


def test_people_see_a_readable_fit_and_json_keeps_the_raw_scores(tmp_path, monkeypatch, tiny_model_dir):
    import json

    from tests.engine.test_service import make_pack

    monkeypatch.setenv("STICKERPICK_MODEL_DIR", str(tiny_model_dir))
    monkeypatch.setenv("STICKERPICK_DEFAULT_PACKS", "[]")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert (
        runner.invoke(app, ["packs", "add", str(make_pack(tmp_path / "food")), "--chat", "demo"]).exit_code
        == 0
    )
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "out"), "--json", str(tmp_path / "d.json")])
    assert result.exit_code == 0, result.output
    assert "score" not in result.output
    shown = [ln for ln in result.output.splitlines() if ln.strip()[:2] in ("1.", "2.")]
    assert shown and all(re.search(r"fit \d{1,3}%$", ln) for ln in shown), shown
    answers = json.loads((tmp_path / "d.json").read_text())
    assert (
        len(answers) == sum(1 for s in DEMO_SCRIPT if isinstance(s, tuple))
        and answers[0]["score_kind"] == "cosine"
    )
    first = answers[0]["items"][0]
    assert isinstance(first["score"], float) and first["fit"] == round(max(0.0, min(1.0, first["score"])), 4)
    assert f"fit {first['fit']:.0%}" in result.output


def test_a_matching_head_logit_reads_as_a_probability() -> None:
    from pathlib import Path

    from engine.service import SuggestedSticker, SuggestResult

    def item(score: float) -> SuggestedSticker:
        return SuggestedSticker(0, 1, "p", "s", None, None, score, Path("x"))

    result = SuggestResult(score_kind="match-logit")
    assert result.fit(item(0.0)) == 0.5 and result.fit(item(-0.087)) == pytest.approx(0.478, abs=1e-3)
    assert result.fit(item(1e6)) == 1.0 and result.fit(item(-1e6)) < 1e-20
    assert SuggestResult().fit(item(-0.2)) == 0.0  # cosine below zero: no fit


REPO = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(
    r"\.\./shared|shared/(FORMAT|DESIGN|STACK|RESEARCH)\.md|\bissues? \d+\b|shared/data folder"
)


def _commands(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():  # a group: its subcommands
        found += _commands(sub, (*path, name))
    return found


def test_the_repository_stands_alone_docs_and_help() -> None:
    docs = [REPO / "README.md", REPO / ".env.example", *sorted((REPO / "docs").glob("*.md"))]
    for doc in docs:
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            assert not OUTSIDE.search(line), f"{doc.name}:{n} points outside the repository: {line}"
    assert "docs/FORMAT.md" in (REPO / "README.md").read_text(encoding="utf-8")
    assert "## Evaluation" in (REPO / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    commands = _commands(typer.main.get_command(app))
    assert ("data", "convert") in commands and ("model", "promote") in commands
    for path in commands:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert not OUTSIDE.search(result.output), (path, result.output)


def test_error_texts_point_inside_the_repository() -> None:
    for package in ("bot", "engine", "export", "training", "retraining", "migrations", "scripts"):
        for source in (REPO / package).rglob("*"):
            if source.suffix in (".py", ".sh"):
                text = source.read_text(encoding="utf-8")
                assert not re.search(r"\.\./shared|shared/(FORMAT|DESIGN|STACK)\.md|shared/data", text), (
                    source
                )


def test_packs_add_list_remove_for_telegram_and_discord_chats(tmp_path, monkeypatch, tiny_model_dir) -> None:
    import asyncio

    from engine.service import ChatRef, open_service
    from engine.settings import Settings
    from tests.engine.test_service import make_pack

    monkeypatch.setenv("STICKERPICK_MODEL_DIR", str(tiny_model_dir))
    monkeypatch.setenv("STICKERPICK_DEFAULT_PACKS", "[]")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    pack = str(make_pack(tmp_path / "food"))
    result = runner.invoke(app, ["packs", "add", pack, "--chat", "telegram:-1001234"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["packs", "add", pack, "--chat", "discord:98765"]).exit_code == 0
    assert "food" in runner.invoke(app, ["packs", "list", "--chat", "telegram:-1001234"]).output
    assert "no packs yet" in runner.invoke(app, ["packs", "list", "--chat", "telegram:-1"]).output

    async def packs_of(ref: ChatRef) -> list[str]:
        service = await open_service(Settings())
        try:
            return [p.name for p in await service.list_packs(ref)]
        finally:
            await service.close()

    assert asyncio.run(packs_of(ChatRef("telegram", "-1001234"))) == ["food"]
    assert asyncio.run(packs_of(ChatRef("discord", "guild-98765"))) == ["food"]  # the server's packs
    result = runner.invoke(app, ["packs", "remove", "food", "--chat", "discord:98765"])
    assert result.exit_code == 0 and asyncio.run(packs_of(ChatRef("discord", "guild-98765"))) == []
    result = runner.invoke(app, ["packs", "list", "--chat", "discord:general"])
    assert result.exit_code == 1 and "telegram:CHAT_ID" in result.output
