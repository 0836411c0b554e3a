from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from telegram import Update
from telegram.ext import AIORateLimiter, Application

from bot.telegram import build_application
from bot.telegram._context import DEPS_KEY, Deps, PendingSuggestion
from bot.telegram.settings import TelegramSettings
from engine.service import ChatRef, StickerService
from engine.settings import Settings
from tests.auxil.telegram import ALICE, GROUP, TOKEN, FakeBotApi, FakeRequest
from tests.engine.test_service import make_pack


@dataclass
class Harness:
    """The real Application with every handler, talking to an in-memory Bot API."""

    app: Application
    api: FakeBotApi
    service: StickerService

    @property
    def deps(self) -> Deps:
        return self.app.bot_data[DEPS_KEY]

    def pending(self) -> PendingSuggestion:
        """The newest /sticker answer whose buttons may still be pressed."""
        return self.deps.suggestions.values()[-1]

    async def send(self, update: dict[str, Any]) -> None:
        """Process one update as polling would, then wait for the background jobs it started."""
        await self.app.process_update(Update.de_json(update, self.app.bot))
        await self.drain()

    async def drain(self) -> None:
        while self.deps.tasks:
            await asyncio.gather(*list(self.deps.tasks), return_exceptions=True)


@pytest.fixture
def settings(settings: Settings) -> TelegramSettings:
    """The test settings as the adapter reads them: the engine's (tests/conftest.py) and Telegram's defaults."""
    return TelegramSettings.model_construct(_fields_set=settings.model_fields_set, **dict(settings))


def telegram_settings(settings: TelegramSettings) -> TelegramSettings:
    settings.telegram_token = SecretStr(TOKEN)
    settings.telegram_admin_cache_s = 300
    settings.telegram_inline_window_s = 600
    return settings


def offline_application(settings: TelegramSettings, service: StickerService, api: FakeBotApi) -> Application:
    # The real AIORateLimiter (flood-wait retries) without its throttling, which would slow the tests down.
    limiter = AIORateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=2)
    return build_application(
        settings,
        service,
        request=FakeRequest(api),
        get_updates_request=FakeRequest(api),
        rate_limiter=limiter,
    )


@pytest.fixture
def api(request: pytest.FixtureRequest) -> FakeBotApi:
    """The fake Bot API; ``@pytest.mark.parametrize("api", [False], indirect=True)`` → privacy mode on."""
    api = FakeBotApi(can_read_all_group_messages=getattr(request, "param", True))
    api.add_chat(GROUP, admins=[ALICE])
    return api


@pytest.fixture
async def tg(settings: TelegramSettings, service: StickerService, api: FakeBotApi) -> AsyncIterator[Harness]:
    app = offline_application(telegram_settings(settings), service, api)
    await app.initialize()
    await app.start()  # the update loop and job queue, not the updater: tests feed updates themselves
    harness = Harness(app, api, service)
    try:
        yield harness
    finally:
        await harness.drain()
        await app.stop()
        await app.shutdown()


GROUP_REF = ChatRef("telegram", str(GROUP["id"]), GROUP["title"])


async def add_food_pack(service: StickerService, root: Path, chat: ChatRef = GROUP_REF) -> None:
    """The engine tests' small local pack (tags the tiny test model reads), enabled in ``chat``."""
    await service.add_pack(chat, make_pack(root))


def buttons(call_or_message: Any) -> list[tuple[str, str]]:
    """(text, callback_data) of every inline button of a sendMessage/sendSticker call or a sent message."""
    params = getattr(call_or_message, "params", call_or_message)
    markup = params.get("reply_markup") or {}
    return [(b["text"], b.get("callback_data", "")) for row in markup.get("inline_keyboard", []) for b in row]
