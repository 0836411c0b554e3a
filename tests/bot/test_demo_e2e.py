"""The README's demo path on the real pieces: export all-MiniLM-L6-v2, build the Noto pack from npm, demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_setup_then_demo_on_the_real_baseline_and_default_pack(tmp_path):
    if not (REPO / "vendor" / "node_modules" / "emoji-datasource-google").is_dir():
        pytest.skip("emoji artwork not installed: `bash dev.sh setup` runs `npm ci --prefix vendor`")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "STICKERPICK_HOME": str(tmp_path / "home"),
        "STICKERPICK_BASELINE_MODEL_DIR": str(tmp_path / "baseline"),
        "STICKERPICK_MODEL_DIR": str(tmp_path / "baseline"),
        "HF_HUB_OFFLINE": "1",
    }
    cli = [sys.executable, "-m", "bot.cli"]
    setup = subprocess.run([*cli, "setup"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert setup.returncode == 0, setup.stderr
    assert "pack noto-emoji: 297 added" in setup.stdout
    demo = subprocess.run(
        [*cli, "demo", "--out", str(tmp_path / "out")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.count("Stickers for:") == 4
    assert "[noto-emoji]" in demo.stdout
    assert len(list((tmp_path / "out").glob("suggestion-*.png"))) == 4
    again = subprocess.run([*cli, "setup"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "0 added, 297 already indexed" in again.stdout  # idempotent
