"""Commands are sent to Discord only when they changed (a hash per scope in the home folder), or when asked
(`stickerpick discord --sync-commands`); manager commands carry default permissions."""

from __future__ import annotations

import json

import discord
from typer.testing import CliRunner

from bot.discord._bot import SYNCED_FILE, command_payload_hash, forget_synced_commands
from engine.settings import Settings
from tests.auxil.discord import offline_server

PUT_GLOBAL = "PUT /applications/{application_id}/commands"
MANAGER_COMMANDS = {"addpack", "removepack", "logging"}


def _puts(server) -> list[str]:
    return [r for r in server.api.routes() if r.startswith("PUT ")]


async def test_commands_are_synced_only_when_they_changed(migrated: Settings, service, monkeypatch):
    async with offline_server(migrated, service, monkeypatch) as first:
        assert _puts(first) == [PUT_GLOBAL]
        record = json.loads((migrated.home / SYNCED_FILE).read_text())
        [key] = record
        assert key.endswith(":global") and record[key] == await command_payload_hash(first.bot.tree, None)
    async with offline_server(migrated, service, monkeypatch) as again:  # a restart: nothing to send
        assert _puts(again) == [] and again.api.synced == {}

    # What was synced differs from what the bot has now (an upgrade changed a description, …): sent again.
    (migrated.home / SYNCED_FILE).write_text(json.dumps({key: "0" * 64}))
    async with offline_server(migrated, service, monkeypatch) as changed:
        assert _puts(changed) == [PUT_GLOBAL]
    async with offline_server(migrated, service, monkeypatch) as unchanged:
        assert _puts(unchanged) == []

    assert forget_synced_commands(migrated) and not forget_synced_commands(migrated)
    async with offline_server(migrated, service, monkeypatch) as forced:
        assert _puts(forced) == [PUT_GLOBAL]

    migrated.discord_guild_ids = [111]  # another scope has its own record
    async with offline_server(migrated, service, monkeypatch) as dev:
        assert set(dev.api.synced) == {"111"}
    async with offline_server(migrated, service, monkeypatch) as dev_again:
        assert dev_again.api.synced == {}


async def test_the_hash_follows_the_payload(migrated: Settings, service, monkeypatch):
    async with offline_server(migrated, service, monkeypatch) as server:
        tree = server.bot.tree
        before = await command_payload_hash(tree, None)
        assert before == await command_payload_hash(tree, None)

        @discord.app_commands.command(name="extra", description="one more")
        async def extra(interaction: discord.Interaction) -> None: ...

        tree.add_command(extra)
        assert await command_payload_hash(tree, None) != before


async def test_manager_commands_default_to_manage_server(migrated: Settings, service, monkeypatch):
    async with offline_server(migrated, service, monkeypatch) as server:
        commands = {c["name"]: c for c in server.api.synced["global"]}
        manage_guild = discord.Permissions(manage_guild=True).value
        for name, command in commands.items():
            expected = manage_guild if name in MANAGER_COMMANDS else None
            assert command.get("default_member_permissions") == expected, name


def test_cli_sync_commands_forgets_the_record_and_turns_sync_on(tmp_path, monkeypatch):
    from bot import cli
    from bot.discord import _bot

    monkeypatch.setenv("STICKERPICK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "t")
    monkeypatch.setenv("STICKERPICK_DISCORD_SYNC_COMMANDS", "false")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / SYNCED_FILE).write_text("{}")
    ran: list[Settings] = []
    monkeypatch.setattr("bot.discord.run", ran.append)
    result = CliRunner().invoke(cli.app, ["discord", "--sync-commands"])
    assert result.exit_code == 0, result.output
    assert ran and ran[0].discord_sync_commands and not _bot.synced_path(ran[0]).exists()
