"""Logging for every command: what a person needs by default, the rest with ``--verbose``.

Normal runs show our own loggers at ``STICKERPICK_LOG_LEVEL`` and third-party ones (onnxruntime's quantiser,
apscheduler, PTB, discord.py, …) only from WARNING up; Python warnings (e.g. PyTorch's TracerWarnings while
exporting) are hidden. ``--verbose`` shows third-party INFO, our DEBUG and the warnings.
``STICKERPICK_LOG_FORMAT=json`` writes one JSON object per line (for log collectors).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

OUR_LOGGERS = ("bot", "engine", "export", "training", "migrations")
# Libraries whose warnings are for developers (deprecations, opset advice during an export): shown with
# --verbose only. Same for anything logged on the root logger itself (onnxruntime's quantiser logs there;
# our code never does).
DEVELOPER_LOGGERS = ("transformers", "optimum", "torch", "onnxscript")
# Loud at INFO even in a verbose run, and httpx's request lines carry the Bot API token in the URL.
ALWAYS_QUIET = ("httpx", "httpcore")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HANDLER_MARK = "_stickerpick_handler"

# The attributes every LogRecord has; anything else came in through ``extra=`` and goes into the JSON.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, exception, extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        return json.dumps(out, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (test runners swap it per command)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _no_root_logger_chatter(record: logging.LogRecord) -> bool:
    return record.name != "root" or record.levelno >= logging.ERROR


def configure_logging(level: str = "INFO", *, verbose: bool = False, fmt: str = "text") -> None:
    """Set up the root handler once per process (again: replaces ours, keeps anyone else's)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    setattr(handler, _HANDLER_MARK, True)
    if not verbose:
        handler.addFilter(_no_root_logger_chatter)
    root.addHandler(handler)

    ours = logging.DEBUG if verbose else logging.getLevelNamesMapping()[level.upper()]
    root.setLevel(logging.INFO if verbose else max(ours, logging.WARNING))
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(ours)
    for name in ALWAYS_QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in DEVELOPER_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    # transformers and optimum attach their own handlers and levels when first imported (lazily, inside the
    # export commands): they read this instead. An operator's own setting wins.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "info" if verbose else "error")
    logging.captureWarnings(True)  # warnings → the "py.warnings" logger, shown only when verbose
    logging.getLogger("py.warnings").setLevel(logging.WARNING if verbose else logging.CRITICAL)
