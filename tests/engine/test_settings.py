"""Configuration: `.env.example` is valid as it stands for every layer's settings, bad values are one line
each, the env file is chosen (for every layer)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.discord.settings import DiscordSettings
from bot.settings import BotSettings
from bot.telegram.settings import TelegramSettings
from engine.settings import ENV_FILE_VAR, Settings, SettingsError, env_name, load_settings
from retraining.settings import RetrainSettings

# Every layer's settings; each extends the engine's (the bots' also the bot's).
LAYERS: tuple[type[Settings], ...] = (
    Settings,
    BotSettings,
    TelegramSettings,
    DiscordSettings,
    RetrainSettings,
)

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
SETTING_LINE = re.compile(r"^# ?([A-Z][A-Z0-9_]*)=(.*)$")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the file under test configures: no STICKERPICK_*/token/DATABASE_URL from the developer's shell."""
    import os

    for name in list(os.environ):
        if name.startswith("STICKERPICK_") or name in (
            "DATABASE_URL",
            "TELEGRAM_BOT_TOKEN",
            "DISCORD_BOT_TOKEN",
        ):
            monkeypatch.delenv(name)


def example_settings() -> dict[str, str]:
    return {
        m[1]: m[2]
        for m in (SETTING_LINE.match(ln) for ln in EXAMPLE.read_text().splitlines())
        if m is not None
    }


def test_every_line_of_env_example_is_valid_uncommented(tmp_path: Path) -> None:
    lines = example_settings()
    for name, value in lines.items():  # a description after the value would become part of it
        assert not re.search(r"\s", value), (
            f"{name}: put the description on the line above, not after the value"
        )
    env = tmp_path / ".env"
    env.write_text("\n".join(SETTING_LINE.sub(r"\1=\2", ln) for ln in EXAMPLE.read_text().splitlines()))
    for layer in LAYERS:
        settings = layer(_env_file=env)  # the real loader, the whole file uncommented
        for field, info in layer.model_fields.items():
            value = lines.get(env_name(field, layer))
            assert value is not None, f"{env_name(field, layer)} is not in .env.example"
            got = getattr(settings, field)
            if value == "":
                assert got == info.get_default(call_default_factory=True), field  # `NAME=` means the default
            elif isinstance(got, str):
                assert got == value, field
    retraining = RetrainSettings(_env_file=env)
    assert retraining.history_turns == 8 and retraining.export_salt is None
    telegram = TelegramSettings(_env_file=env)
    assert (
        telegram.telegram_token is not None and telegram.telegram_token.get_secret_value() == "123456:ABC..."
    )


def test_every_setting_in_env_example_is_read_by_a_layer() -> None:
    known = {env_name(field, layer) for layer in LAYERS for field in layer.model_fields}
    known |= {ENV_FILE_VAR, "OPENBLAS_NUM_THREADS"}  # read before any settings are / by numpy
    assert sorted(set(example_settings()) - known) == []


def test_the_engine_reads_only_its_own_settings() -> None:
    engine = set(Settings.model_fields)
    for layer in LAYERS[1:]:
        assert engine < set(layer.model_fields), layer  # every layer sees the engine's too
    for field in ("telegram_token", "discord_guild_ids", "metrics_port", "log_level", "retrain_epochs"):
        assert field not in engine


def test_a_bad_setting_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STICKERPICK_RANKER", "bogus")
    monkeypatch.setenv("STICKERPICK_HISTORY_TURNS", "8   turns /sticker reads")
    monkeypatch.setenv("STICKERPICK_TELEGRAM_WEBHOOK_PORT", "99999")
    monkeypatch.setenv("STICKERPICK_EXPORT_SALT", "x" * 3)  # valid: not reported
    with pytest.raises(SettingsError) as caught:
        TelegramSettings.load(_env_file=None)
    lines = str(caught.value).splitlines()
    assert len(lines) == 3, lines
    ranker, turns, port = lines
    assert ranker.startswith("STICKERPICK_RANKER:") and all(
        v in ranker for v in ("auto", "pbr", "text-baseline")
    )
    assert turns.startswith("STICKERPICK_HISTORY_TURNS:") and "'8   turns /sticker reads'" in turns
    assert port.startswith("STICKERPICK_TELEGRAM_WEBHOOK_PORT:") and "65535" in port


def test_a_bad_secret_is_named_but_never_repeated() -> None:
    with pytest.raises(SettingsError) as caught:
        RetrainSettings.load(_env_file=None, export_salt=123456789)  # not a string
    assert str(caught.value).startswith("STICKERPICK_EXPORT_SALT:") and "123456789" not in str(caught.value)


@pytest.mark.parametrize("layer", LAYERS)
def test_env_file_is_chosen_by_stickerpick_env_file(
    layer: type[Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path(".env").write_text("STICKERPICK_TOP_K=7\n")
    assert layer().top_k == 7  # ./.env of the working directory
    other = tmp_path / "etc" / "stickerpick.env"
    other.parent.mkdir()
    other.write_text("STICKERPICK_TOP_K=9\nSTICKERPICK_HISTORY_TURNS=3\n")
    monkeypatch.setenv(ENV_FILE_VAR, str(other))
    assert (layer().top_k, layer().history_turns) == (9, 3)
    monkeypatch.setenv("STICKERPICK_TOP_K", "4")  # the environment wins over the file
    assert layer().top_k == 4
    monkeypatch.setenv(ENV_FILE_VAR, str(tmp_path / "missing.env"))
    with pytest.raises(SettingsError, match="STICKERPICK_ENV_FILE: no such file"):
        layer.load()
    with pytest.raises(SettingsError, match="STICKERPICK_ENV_FILE: no such file"):
        load_settings()


def test_each_layer_reads_its_own_settings_from_the_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = tmp_path / "stickerpick.env"
    chosen.write_text(
        "STICKERPICK_TELEGRAM_WEBHOOK_PORT=8081\nSTICKERPICK_DISCORD_SHARDED=true\n"
        "STICKERPICK_METRICS_PORT=9464\nSTICKERPICK_RETRAIN_EPOCHS=3\n"
    )
    monkeypatch.setenv(ENV_FILE_VAR, str(chosen))
    assert TelegramSettings.load().telegram_webhook_port == 8081
    assert DiscordSettings.load().discord_sharded and DiscordSettings.load().metrics_port == 9464
    assert RetrainSettings.load().retrain_epochs == 3
