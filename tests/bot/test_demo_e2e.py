"""The README's demo path on the real pieces: export all-MiniLM-L6-v2, build the Noto pack from npm, demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.console import DEMO_SCRIPT

REPO = Path(__file__).resolve().parents[2]


def _needs_artwork() -> None:
    if not (REPO / "vendor" / "node_modules" / "emoji-datasource-google").is_dir():
        pytest.skip("emoji artwork not installed: `bash dev.sh setup` runs `npm ci --prefix vendor`")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "STICKERPICK_HOME": str(tmp_path / "home"),
        "HF_HUB_OFFLINE": "1",
        **extra,
    }


def _cli(env: dict[str, str], *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """``stickerpick ARGS`` from the repository, as a fresh process; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.slow
def test_setup_then_demo_on_the_real_baseline_and_default_pack(tmp_path):
    _needs_artwork()
    baseline = str(tmp_path / "baseline")
    env = _env(tmp_path, STICKERPICK_BASELINE_MODEL_DIR=baseline, STICKERPICK_MODEL_DIR=baseline)
    assert "pack noto-emoji: 297 added" in _cli(env, "setup").stdout
    demo = _cli(env, "demo", "--out", str(tmp_path / "out"), timeout=300)
    requests = sum(1 for step in DEMO_SCRIPT if isinstance(step, tuple))
    assert demo.stdout.count("Stickers for:") == requests
    assert "[noto-emoji]" in demo.stdout
    assert len(list((tmp_path / "out").glob("suggestion-*.png"))) == requests
    assert "0 added, 297 already indexed" in _cli(env, "setup").stdout  # idempotent


# The sad faces (and the broken heart) of the bundled Noto pack: what a sad message should get first.
SAD = set("😢😭😞😔😟😥😿💔☹🙁😓😩😫🥺😪🥹😦😧😰😕")


@pytest.fixture(scope="module")
def shipped_demo(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """What the README's demo answers on models/default (set up and run once for the tests below)."""
    import json

    _needs_artwork()
    tmp_path = tmp_path_factory.mktemp("shipped-demo")
    env = _env(tmp_path, STICKERPICK_MODEL_DIR=str(REPO / "models" / "default"))
    _cli(env, "setup", timeout=900)
    answers = tmp_path / "answers.json"
    _cli(env, "demo", "--out", str(tmp_path / "out"), "--json", str(answers), timeout=300)
    return json.loads(answers.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_the_shipped_model_reads_sadness_in_german_spanish_and_russian(shipped_demo):
    """The README's demo on models/default: its last three requests are one sad message each in German,
    Spanish and Russian, and each gets a sad sticker first from the default pack."""
    last = shipped_demo[-3:]
    texts = [a["context"][-1]["text"] for a in last]
    assert [t.split(",")[0] for t in texts] == ["Ich bin so traurig", "estoy muy triste", "мне так грустно"]
    firsts = [a["items"][0]["emoji"].replace("\ufe0f", "") for a in last]
    assert all(e in SAD for e in firsts), list(zip(texts, firsts, strict=True))


@pytest.mark.slow
def test_the_shipped_model_reads_an_emoji_in_the_message(shipped_demo):
    """The demo's "happy birthday!! 🎂": the English tower reads the emoji's name (its vocabulary has no emoji),
    so the pack's birthday cake comes first."""
    [birthday] = [a for a in shipped_demo if "🎂" in a["context"][-1]["text"]]
    assert birthday["items"][0]["emoji"] == "🎂", [i["emoji"] for i in birthday["items"]]
