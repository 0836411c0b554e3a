"""Serving the model the registry points at: after the CLI's `model promote` or `model rollback` a running
bot swaps to it by itself, checking the pointer at most every ``model_check_s``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from engine.ranking import Ranker
from engine.settings import Settings

log = logging.getLogger(__name__)


class ModelWatch:
    """Compares the directory the served model was loaded from (``model_dir``; None: not from the registry,
    never swapped) with the one the settings name now, and swaps when they differ."""

    def __init__(
        self,
        settings: Settings,
        ranker: Callable[[], Ranker],
        swap: Callable[[Ranker], Awaitable[None]],
        model_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.model_dir = model_dir
        self._ranker = ranker
        self._swap = swap
        self._checked = time.monotonic()
        self._task: asyncio.Task[bool] | None = None

    async def check(self) -> bool:
        """Serve the model the settings now name (the registry's ``current`` pointer after the CLI's
        `model promote` or `model rollback`) if it is not the one loaded; True when it swapped. Stickers are
        re-embedded lazily: embeddings are keyed by model version."""
        from engine.ranking import load_ranker

        self._checked = time.monotonic()
        if self.model_dir is None:
            return False
        target = self.settings.serving_model_dir()
        if target.resolve() == self.model_dir.resolve():
            return False
        kind = "auto" if self.settings.ranker in ("auto", "pbr") else self.settings.ranker
        try:
            ranker = await asyncio.to_thread(
                load_ranker,
                kind,
                target,
                max_turns=self.settings.history_turns,
                multilingual=self.settings.multilingual,
            )
        except Exception:
            log.exception(
                "could not load the promoted model %s; still serving %s", target, self._ranker().version
            )
            return False
        await self._swap(ranker)
        self.model_dir = target
        log.info("now serving %s from %s", ranker.version, target)
        return True

    def maybe_check(self) -> None:
        """Cheap: at most every ``model_check_s``, look at the pointer in the background."""
        every = self.settings.model_check_s
        if self.model_dir is None or every <= 0 or time.monotonic() - self._checked < every:
            return
        if self._task is not None and not self._task.done():
            return
        self._checked = time.monotonic()
        self._task = asyncio.create_task(self.check())

    def cancel(self) -> None:
        """Stop a check still running (on shutdown)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
