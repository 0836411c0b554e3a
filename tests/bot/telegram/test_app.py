from __future__ import annotations

import asyncio
import logging
import re

import pytest
from pydantic import SecretStr
from telegram.ext import Application

from bot.telegram import _app, build_application, run
from bot.telegram._app import ALLOWED_UPDATES, file_base_url, serve
from bot.telegram._errors import describe, redact
from bot.telegram.settings import TelegramSettings
from tests.auxil.telegram import ALICE, API_URL, BOB, GROUP, TOKEN, FakeBotApi, Scripted
from tests.bot.telegram.conftest import GROUP_REF, Harness, offline_application, telegram_settings

SECRET = TOKEN.partition(":")[2]


def _leaks(text: str) -> bool:
    return TOKEN in text or SECRET in text or TOKEN.replace(":", "%3A") in text


async def test_the_token_never_reaches_logs_or_chats(tg: Harness, caplog):
    caplog.set_level(logging.DEBUG)
    url = f"{API_URL}{TOKEN}/sendMessage"
    tg.api.fail_next("sendMessage", Scripted(raise_=ConnectionError(f"connection refused: POST {url}")))
    await tg.send(tg.api.message(GROUP, ALICE, "/help"))

    # the failed /help answer, then the apology
    assert tg.api.texts(GROUP["id"])[-1] == "Sorry, something went wrong on my side. Please try again."
    failures = [r for r in caplog.records if r.name == "bot.telegram._errors"]
    assert failures and "connection refused" in failures[0].getMessage()
    assert "<redacted>" in caplog.text
    assert not _leaks(caplog.text)
    for record in caplog.records:
        assert not _leaks(record.getMessage()) and not _leaks(record.exc_text or "")
    assert not any(_leaks(str(c.params)) for c in tg.api.calls)
    # strings the adapter builds from errors are clean too, and so is any later log line quoting a URL
    assert not _leaks(describe(RuntimeError(url)))
    logging.getLogger("somewhere.else").warning("fetching %s", url)
    assert not _leaks(caplog.records[-1].getMessage())
    assert redact(f"token {TOKEN}!") == "token <redacted>!"


async def test_a_failing_handler_never_stops_the_bot(tg: Harness, monkeypatch):
    async def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(tg.service, "suggest", broken)
    await tg.send(tg.api.message(GROUP, ALICE, "/sticker"))
    assert tg.api.texts(GROUP["id"])[-1].startswith("Sorry, something went wrong")
    monkeypatch.undo()
    await tg.send(tg.api.message(GROUP, BOB, "still here?"))
    await tg.send(tg.api.message(GROUP, BOB, "/packs"))
    assert [t.text for t in await tg.service.recent(GROUP_REF)] == ["still here?"]
    assert "no sticker packs" in tg.api.texts(GROUP["id"])[-1]


async def test_a_failing_callback_is_answered_with_an_alert(tg: Harness, monkeypatch):
    async def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(tg.service, "forget", broken)
    await tg.send(tg.api.message(GROUP, ALICE, "/forget"))
    confirm = tg.api.last_message(GROUP["id"])
    await tg.send(tg.api.callback(ALICE, confirm, f"f:y:{ALICE['id']}"))
    answer = tg.api.called("answerCallbackQuery")[-1].params
    assert answer["show_alert"] is True and answer["text"].startswith("Sorry")


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # PTB reads retry_after
async def test_flood_waits_are_retried_by_the_rate_limiter(tg: Harness):
    tg.api.fail_next(
        "sendMessage",
        Scripted(code=429, description="Too Many Requests: retry after 1", parameters={"retry_after": 1}),
    )
    await tg.send(tg.api.message(GROUP, ALICE, "/logging"))
    sends = tg.api.called("sendMessage")
    assert len(sends) == 2 and sends[0].params == sends[1].params
    assert "is <b>off</b>" in tg.api.texts(GROUP["id"])[-1]


async def test_polling_receives_updates_through_get_updates(settings, service):
    api = FakeBotApi()
    api.add_chat(GROUP, admins=[ALICE])
    app = offline_application(telegram_settings(settings), service, api)
    api.updates = asyncio.Queue()
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=0, allowed_updates=ALLOWED_UPDATES)
        for text in ("anyone up for pizza?", "/logging"):
            api.updates.put_nowait(api.message(GROUP, ALICE, text))
        for _ in range(200):
            if api.called("sendMessage"):
                break
            await asyncio.sleep(0.02)
        await app.updater.stop()
        await app.stop()
    assert [t.text for t in await service.recent(GROUP_REF)] == ["anyone up for pizza?"]
    assert "is <b>off</b>" in api.texts(GROUP["id"])[-1]
    polls = api.called("getUpdates")
    assert polls and set(polls[0].params["allowed_updates"]) == set(ALLOWED_UPDATES)


async def test_post_init_sets_the_command_menus_per_scope_and_language(tg: Harness):
    await _app._post_init(tg.app)
    menus = tg.api.command_menus
    languages = [None, "ru", "es", "pt", "fa"]
    assert set(menus) == {
        (scope, lang) for scope in ("default", "all_chat_administrators") for lang in languages
    }
    everyone = ["sticker", "packs", "forget", "help"]
    for lang in languages:
        assert [name for name, _ in menus[("default", lang)]] == everyone  # no admin commands for everyone
        admins = [name for name, _ in menus[("all_chat_administrators", lang)]]
        assert admins == [*everyone, "addpack", "removepack", "logging"]
    english, russian = dict(menus[("default", None)]), dict(menus[("default", "ru")])
    assert english["forget"] == "delete everything kept about you"
    assert russian["forget"] != english["forget"] and re.search("[а-я]", russian["forget"])
    assert re.search("[а-я]", dict(menus[("all_chat_administrators", "ru")])["addpack"])
    tg.api.fail_next("setMyCommands", Scripted(code=400, description="Bad Request: nope"))
    await _app._post_init(tg.app)  # logged, not raised


async def test_retention_runs_as_a_repeating_job(tg: Harness):
    from datetime import timedelta

    from engine.db import utcnow

    old = utcnow() - timedelta(days=tg.service.settings.retention_days + 2)
    await tg.service.record(GROUP_REF, None, "ancient history", at=old)
    await tg.service.record(GROUP_REF, None, "fresh")
    [job] = tg.app.job_queue.get_jobs_by_name("retention")
    await job.run(tg.app)
    assert [t.text for t in await tg.service.recent(GROUP_REF)] == ["fresh"]


def test_polling_by_default_webhook_by_configuration(settings, monkeypatch):
    seen: dict[str, dict] = {}
    monkeypatch.setattr(Application, "run_polling", lambda self, **kw: seen.setdefault("polling", kw))
    monkeypatch.setattr(Application, "run_webhook", lambda self, **kw: seen.setdefault("webhook", kw))
    serve(Application.builder().token(TOKEN).build(), settings)
    assert seen["polling"]["allowed_updates"] == ALLOWED_UPDATES
    settings.telegram_webhook_url = "https://bot.example.com/tg/updates"
    settings.telegram_webhook_port = 8081
    settings.telegram_webhook_secret = SecretStr("s3cret-value")
    serve(Application.builder().token(TOKEN).build(), settings)
    hook = seen["webhook"]
    assert hook["webhook_url"] == "https://bot.example.com/tg/updates" and hook["url_path"] == "tg/updates"
    assert hook["port"] == 8081 and hook["listen"] == "127.0.0.1" and hook["secret_token"] == "s3cret-value"


def test_settings_and_urls(settings, service, monkeypatch):
    assert file_base_url("http://localhost:8081/bot") == "http://localhost:8081/file/bot"
    assert file_base_url("http://x/custom/") == "http://x/custom/"
    with pytest.raises(ValueError, match="TELEGRAM_BOT_TOKEN"):
        build_application(settings, service)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("STICKERPICK_TELEGRAM_INLINE_WINDOW_S", "60")
    env = TelegramSettings(_env_file=None)
    assert env.telegram_inline_window_s == 60 and env.telegram_admin_cache_s == 300
    assert TOKEN not in repr(env)
    settings.telegram_base_url = "http://127.0.0.1:9/bot"
    app = build_application(telegram_settings(settings), service)
    assert app.bot.base_url == f"http://127.0.0.1:9/bot{TOKEN}"
    assert app.bot.base_file_url == f"http://127.0.0.1:9/file/bot{TOKEN}"


def test_run_refuses_without_a_token_or_on_an_old_schema(settings):
    with pytest.raises(SystemExit, match="TELEGRAM_BOT_TOKEN"):
        run(settings)
    with pytest.raises(SystemExit, match="stickerpick db upgrade"):
        run(telegram_settings(settings))  # the fixture database was never migrated


def test_in_memory_caches_are_bounded_and_expire():
    from bot.telegram._context import BoundedCache

    now = [0.0]
    cache: BoundedCache[int, str] = BoundedCache(size=2, ttl_s=10, clock=lambda: now[0])
    cache.put(1, "a")
    cache.put(2, "b")
    assert cache.get(1) == "a"  # 1 is now the most recent
    cache.put(3, "c")
    assert cache.get(2) is None and cache.values() == ["a", "c"]
    now[0] = 11
    assert cache.get(1) is None and cache.get(3) is None and len(cache) == 0
