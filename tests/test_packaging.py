"""The serving wheel stands alone: built by scripts/build_wheel.sh, installed into a fresh venv without the
`train` extra, `stickerpick setup && stickerpick demo` work with no torch, no npm artwork and no checkout.
(The Dockerfile installs this same wheel.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.console import DEMO_SCRIPT

REPO = Path(__file__).resolve().parents[1]
NODE_MODULES = Path(os.environ.get("NODE_MODULES", REPO / "vendor" / "node_modules"))


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_the_wheel_installs_and_serves_without_torch_or_npm(tmp_path: Path) -> None:
    if not (NODE_MODULES / "emoji-datasource-google").is_dir():
        pytest.skip(f"emoji artwork not installed at {NODE_MODULES}: `npm ci --prefix vendor`")
    dist = tmp_path / "dist"
    env = {**os.environ, "NODE_MODULES": str(NODE_MODULES), "PYTHON": sys.executable}
    _run(["bash", "scripts/build_wheel.sh", str(dist)], cwd=REPO, env=env, timeout=600)
    [wheel] = dist.glob("stickerpick-*.whl")
    assert not (REPO / "engine" / "assets").exists() and not (REPO / "stickerpick.egg-info").exists()

    venv = tmp_path / "venv"
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    _run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)], env=clean, timeout=120)
    _run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], env=clean, timeout=1200)

    work = tmp_path / "elsewhere"  # not the checkout: no models/, no vendor/, no .env
    work.mkdir()
    served = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(work),
        "STICKERPICK_HOME": str(work / "home"),
        "STICKERPICK_VENDOR_DIR": str(work / "no-npm-here"),
        "HF_HUB_OFFLINE": "1",
    }
    sp = str(venv / "bin" / "stickerpick")
    setup = _run([sp, "setup"], cwd=work, env=served, timeout=600)
    assert "pack noto-emoji: 297 added" in setup.stdout and "exporting" not in setup.stdout
    assert "engine/assets/models/default" in setup.stdout  # the PBR model shipped in the wheel
    demo = _run([sp, "demo", "--out", str(work / "out")], cwd=work, env=served, timeout=600)
    requests = sum(1 for step in DEMO_SCRIPT if isinstance(step, tuple))
    assert demo.stdout.count("Stickers for:") == requests and "[noto-emoji]" in demo.stdout
    assert "model: pbr" in demo.stdout
    verify = _run(
        [sp, "verify", str(next(venv.glob("lib/python*/site-packages/engine/assets/models/default")))],
        cwd=work,
        env=served,
        timeout=300,
    )
    assert "model ok" in verify.stdout
    no_torch = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import torch"], capture_output=True, env=served
    )
    assert no_torch.returncode != 0 and b"No module named 'torch'" in no_torch.stderr
    again = _run([sp, "setup"], cwd=work, env=served, timeout=600)
    assert "0 added, 297 already indexed" in again.stdout
