"""Adding one Telegram sticker set to the library: look it up (getStickerSet), import it — each sticker new to
the library is downloaded once, static, animated `.tgs` and video `.webm` alike; decoding is the engine's — in a
background task, while one status message shows the progress and ends in the report (or the refusal, worded
here from the engine's typed error).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress

from telegram import Bot, Message, Sticker, StickerSet
from telegram.constants import StickerType
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot.telegram import _texts as texts
from bot.telegram._context import PLATFORM, Deps, deps
from bot.telegram._errors import describe, redact
from engine.library import PackError, PlatformSticker, Skipped
from engine.service import ChatRef, UserRef

log = logging.getLogger(__name__)

# Telegram allows about one message edit per second per chat: the progress message changes at most this often.
PROGRESS_EDIT_INTERVAL_S = 3.0
MAX_SKIPPED_SHOWN = 3


class DownloadFailed(OSError):
    """One sticker could not be downloaded: the engine skips it and reports why (never with the token)."""


def set_link(name: str) -> str:
    return f"https://t.me/addstickers/{name}"


def platform_sticker(bot: Bot, sticker: Sticker, max_bytes: int, position: int = 0) -> PlatformSticker:
    """The engine's view of a Telegram sticker: keyed by file_unique_id; bytes fetched only if new. Its
    name in reports is its place in the set and its emoji ("#4 💥"), what a user can find in the set."""

    async def fetch() -> bytes:
        if sticker.file_size and sticker.file_size > max_bytes:
            raise DownloadFailed(f"the file is {sticker.file_size} bytes; the limit is {max_bytes}")
        try:
            file = await bot.get_file(sticker.file_id)
            data = await file.download_as_bytearray()
        except TelegramError as exc:
            log.info("download of sticker %s failed: %s", sticker.file_unique_id, describe(exc))
            raise DownloadFailed(f"download failed ({type(exc).__name__})") from None  # no URL in the chain
        return bytes(data)

    return PlatformSticker(
        sticker_id=sticker.file_unique_id,
        file_id=sticker.file_id,
        emoji=sticker.emoji,
        fetch=fetch,
        name=f"#{position + 1} {sticker.emoji or ''}".rstrip(),
    )


class ImportProgress:
    """The engine's progress callback → edits of one status message, throttled."""

    def __init__(self, status: Message, title: str) -> None:
        self.status, self.title = status, title
        self.last_edit = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self.last_edit < PROGRESS_EDIT_INTERVAL_S:
            return
        if self._task is not None and not self._task.done():
            return
        self.last_edit = now
        text = texts.IMPORT_PROGRESS.format(title=texts.html(self.title), done=done, total=total)
        self._task = asyncio.get_running_loop().create_task(self._edit(text))

    async def _edit(self, text: str) -> None:
        with suppress(TelegramError):
            await self.status.edit_text(text, parse_mode=texts.PARSE_MODE)

    async def finish(self, text: str) -> None:
        if self._task is not None:
            with suppress(Exception):
                await self._task
        await self._edit(text)


def _report_text(title: str, name: str, added: int, unchanged: int, skipped: list[Skipped]) -> str:
    link = f'<a href="{set_link(name)}">{texts.html(name)}</a>'
    text = texts.IMPORT_DONE.format(title=texts.html(title), link=link, added=added, unchanged=unchanged)
    if skipped:
        examples = texts.skipped_examples(skipped, MAX_SKIPPED_SHOWN)
        more = f" (+{len(skipped) - MAX_SKIPPED_SHOWN} more)" if len(skipped) > MAX_SKIPPED_SHOWN else ""
        text += "\n" + texts.IMPORT_SKIPPED.format(
            n=len(skipped), examples=texts.html(redact(examples)) + more
        )
    return text


async def _look_up_set(bot: Bot, set_name: str, status: Message) -> StickerSet | None:
    """The sticker set, or None once ``status`` says why there is none to add."""
    try:
        sticker_set = await bot.get_sticker_set(set_name)
    except BadRequest:
        refusal = texts.SET_NOT_FOUND
    except TelegramError as exc:
        log.warning("getStickerSet %s failed: %s", set_name, describe(exc))
        refusal = texts.SET_LOOKUP_FAILED
    else:
        if sticker_set.sticker_type != StickerType.CUSTOM_EMOJI:
            return sticker_set
        refusal = texts.SET_CUSTOM_EMOJI
    await status.edit_text(refusal.format(name=texts.html(set_name)), parse_mode=texts.PARSE_MODE)
    return None


async def import_set(
    bot: Bot,
    d: Deps,
    target: ChatRef,
    set_name: str,
    by: UserRef | None,
    status: Message,
    announce: Callable[[str], Awaitable[object]] | None = None,
) -> None:
    """Look the set up, import it (only new stickers are fetched), enable it in ``target``; report on
    ``status``. The caller has put ``set_name`` in ``d.importing``; this releases it."""
    title = set_name
    try:
        sticker_set = await _look_up_set(bot, set_name, status)
        if sticker_set is None:
            return
        title = sticker_set.title or sticker_set.name
        total = len(sticker_set.stickers)
        with suppress(TelegramError):
            await status.edit_text(
                texts.IMPORT_STARTED.format(title=texts.html(title), total=total), parse_mode=texts.PARSE_MODE
            )
        progress = ImportProgress(status, title)
        limit = d.settings.max_media_bytes
        stickers = [platform_sticker(bot, s, limit, i) for i, s in enumerate(sticker_set.stickers)]
        try:
            report = await d.service.import_platform_pack(
                PLATFORM,
                sticker_set.name,
                stickers,
                title=title,
                source=set_link(sticker_set.name),
                progress=progress,
            )
            await d.service.enable_pack(target, report.pack_name, by=by)
        except PackError as exc:
            log.info("importing set %s refused: %s", set_name, redact(str(exc)))
            reason = redact(texts.import_refusal(exc))
            await progress.finish(texts.IMPORT_FAILED.format(title=texts.html(title), reason=reason))
            return
        await progress.finish(
            _report_text(title, sticker_set.name, report.added, report.unchanged, report.skipped)
        )
        if announce is not None:
            with suppress(TelegramError):
                await announce(title)
    except Exception:
        with suppress(TelegramError):
            await status.edit_text(
                texts.IMPORT_CRASHED.format(title=texts.html(title)), parse_mode=texts.PARSE_MODE
            )
        raise  # → the application's error handler (logged, redacted)
    finally:
        d.importing.discard(set_name.lower())


def start_import(
    context: ContextTypes.DEFAULT_TYPE,
    target: ChatRef,
    set_name: str,
    by: UserRef | None,
    status: Message,
    announce: Callable[[str], Awaitable[object]] | None = None,
) -> None:
    d = deps(context)
    d.importing.add(set_name.lower())
    # Not tied to an update: import_set reports a failure on ``status``; the error handler logs it.
    d.spawn(context.application, import_set(context.bot, d, target, set_name, by, status, announce))


def already_importing(d: Deps, name: str) -> bool:
    return name.lower() in d.importing
