"""Layers point one way (docs/ARCHITECTURE.md): every import in the tree, at module level or inside a function,
is checked against the allowed directions. It fails if training imports export, if the engine imports torch,
a platform SDK or training, or if anything below retraining imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = {
    "torch",
    "transformers",
    "optimum",
    "onnx",
    "onnxscript",
    "sklearn",
    "matplotlib",
    "efficientnet_lite_pytorch",
}
SDKS = {"telegram", "discord"}
# package → top-level modules it must never import (directly or lazily)
FORBIDDEN: dict[str, set[str]] = {
    "engine": HEAVY | SDKS | {"training", "export", "bot", "retraining"},
    "training": SDKS | {"export", "bot", "retraining"},
    "export": SDKS | {"bot", "retraining"},
    "retraining": SDKS | {"bot"},
    "bot": HEAVY | {"retraining", "training", "export"},
}
# The composition root wires the layers: only the CLI's modules (the package bot/cli/) may reach training,
# export and retraining, and only lazily (inside the command that needs them), so serving never loads them.
COMPOSITION_ROOT = "bot/cli/"


def in_composition_root(rel: str) -> bool:
    return rel.startswith(COMPOSITION_ROOT)


def imports_of(path: Path) -> list[tuple[str, int, bool]]:
    """(top-level module, line, at module level?) of every import in a file; an import inside a function is
    lazy (it runs only when the function does)."""
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                out.extend((a.name.split(".")[0], child.lineno, not in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                out.append((child.module.split(".")[0], child.lineno, not in_function))
            visit(
                child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            )

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), False)
    return out


def violations() -> list[str]:
    found = []
    for package, banned in FORBIDDEN.items():
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            for module, line, module_level in imports_of(path):
                if module not in banned:
                    continue
                if (
                    in_composition_root(rel)
                    and module in {"training", "export", "retraining"}
                    and not module_level
                ):
                    continue
                found.append(f"{rel}:{line} imports {module}")
    return found


def test_layers_point_one_way() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("package", "source", "needle"),
    [
        ("training", "from export.pbr import export_pbr\n", "imports export"),
        ("engine", "import torch\n", "imports torch"),
        ("engine", "def f():\n    from training.model import PBRModel\n", "imports training"),
        ("bot", "def f():\n    from training import train\n", "imports training"),
        ("bot/telegram", "def f():\n    from retraining.retrain import retrain\n", "imports retraining"),
        # the CLI at module level (an import that runs for every command, `stickerpick telegram` too)
        ("bot/cli", "from training.train import main\n", "imports training"),
        (
            "bot/cli",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import export\n",
            "imports export",
        ),
        ("bot/cli", "import torch\n", "imports torch"),
        ("bot/cli", "def f():\n    import torch\n", "imports torch"),  # heavy libraries: not even lazily
        ("retraining", "import discord\n", "imports discord"),
    ],
)
def test_the_check_catches_a_wrong_import(package: str, source: str, needle: str) -> None:
    probe = REPO / package / "_layer_probe.py"
    probe.write_text(source, encoding="utf-8")
    try:
        assert any(needle in v for v in violations())
    finally:
        probe.unlink()


def test_the_cli_may_import_the_upper_layers_inside_a_command() -> None:
    probe = REPO / "bot" / "cli" / "_layer_probe.py"
    probe.write_text("def command():\n    from retraining.retrain import retrain\n", encoding="utf-8")
    try:
        assert not any("_layer_probe" in v for v in violations())
    finally:
        probe.unlink()
