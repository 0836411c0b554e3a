"""What the operator reads when the service cannot start: the engine's typed start-up errors worded in English,
each with the `stickerpick` command that fixes it. Shared by the CLI and the bots' start-up (the engine names
no command; these are the commands of this package's console script).
"""

from __future__ import annotations

from engine.errors import ModelKind, ModelMissing, ModelProblem, SchemaOutOfDate

__all__ = ["BUILD_COMMANDS", "model_missing", "schema_out_of_date", "startup_error"]

# The command that builds a model directory, by the model it should hold (None: whichever is served).
BUILD_COMMANDS: dict[ModelKind | None, str] = {
    None: "stickerpick setup",
    ModelKind.BASELINE: "stickerpick setup  (or: stickerpick export baseline)",
    ModelKind.PBR: (
        "stickerpick export CHECKPOINT OUT_DIR  (models/default: see docs/RESULTS.md for the training command)"
    ),
}
# What to do about each problem; {build}: the command. Problems absent here are a setting or a file to
# correct, not something a rebuild fixes.
_REMEDIES = {
    ModelProblem.NO_MANIFEST: "Build it with: {build}",
    ModelProblem.UNREADABLE_MANIFEST: "Rebuild it with: {build}",
    ModelProblem.WRONG_FORMAT: "Rebuild it with: {build}",
    ModelProblem.MISSING_FILE: "Rebuild it with: {build}",
    ModelProblem.CHANGED_FILE: "Restore the model directory, or rebuild it with: {build}",
    ModelProblem.UNLOADABLE_FILE: "Restore it, or rebuild the model directory with: {build}",
    ModelProblem.MISMATCHED_FILE: "Rebuild it with: python -m export.pictures MODEL_DIR",
}


def model_missing(exc: ModelMissing, build: str | None = None) -> str:
    """One line: what is wrong with the model directory and the command that builds it. ``build``: the
    command for a directory of no particular kind (default: the one that builds the served model)."""
    command = BUILD_COMMANDS[exc.kind] if exc.kind is not None or build is None else build
    remedy = _REMEDIES.get(exc.problem)
    return f"{exc} {remedy.format(build=command)}" if remedy else str(exc)


def schema_out_of_date(exc: SchemaOutOfDate) -> str:
    return f"{exc} Run `stickerpick db upgrade` first."


def startup_error(exc: SchemaOutOfDate | ModelMissing) -> str:
    """The line a bot or a CLI command ends with when the service cannot open."""
    if isinstance(exc, SchemaOutOfDate):
        return schema_out_of_date(exc)
    return model_missing(exc)
