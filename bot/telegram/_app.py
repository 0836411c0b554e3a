"""The Application: every handler, the rate limiter, the error handler, the retention job; polling or webhook."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlparse

from telegram import BotCommand, BotCommandScopeAllChatAdministrators, BotCommandScopeDefault, Update
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError, TimedOut
from telegram.ext import AIORateLimiter, Application, BaseRateLimiter, ContextTypes, TypeHandler
from telegram.request import BaseRequest

from bot.i18n import LANGUAGES, SOURCE_LANGUAGE, use_language
from bot.telegram import _help, _history, _inline, _membership, _packs, _privacy, _sticker
from bot.telegram import _texts as texts
from bot.telegram._admin import AdminCache
from bot.telegram._compat import CompatRequest, needs_compat
from bot.telegram._context import DEPS_KEY, PLATFORM, Deps, deps
from bot.telegram._errors import describe, install_redaction, on_error
from bot.telegram._updates import PerChatUpdateProcessor
from bot.telegram.settings import TelegramSettings
from engine.service import StickerService

log = logging.getLogger(__name__)

# Flood waits (429 RetryAfter): PTB's AIORateLimiter throttles to Telegram's limits and retries this often.
FLOOD_MAX_RETRIES = 3
RETENTION_INTERVAL_S = 3600.0  # history retention for quiet chats too, not only when messages arrive
RETENTION_FIRST_S = 60.0
ALLOWED_UPDATES = [
    Update.MESSAGE,
    Update.EDITED_MESSAGE,
    Update.CALLBACK_QUERY,
    Update.INLINE_QUERY,
    Update.CHOSEN_INLINE_RESULT,
    Update.MY_CHAT_MEMBER,
]
# The command menu (setMyCommands): everyone's commands, then the admins' (in their menu only), each described
# by the message of that name in texts; the order is the menu's.
EVERYONE_COMMANDS = ("sticker", "packs", "forget", "help")
ADMIN_COMMANDS = ("addpack", "removepack", "logging")
# Runs before every other handler (PTB runs the groups in order, in the update's task): the language of the
# user the update comes from, for every text the handlers send (bot.i18n).
LANGUAGE_GROUP = -100
# httpx logs every request URL at INFO, and Bot API URLs contain the token.
QUIET_LOGGERS = ("httpx", "httpcore")
# Message text never reaches the logs: at DEBUG python-telegram-bot logs every update and every Bot API call
# with its parameters and result (message text); it never logs below INFO here, whatever the log level.
CONTENT_LOGGERS = ("telegram",)
HEALTH_KEY = "stickerpick.health"
# Updates handled at once (each chat's still in order): a slow /sticker in one group no longer holds up the
# others, and messages arriving together share a group commit.
CONCURRENT_UPDATES = 32
# Start-up is retried while Telegram cannot be reached (for ever, backing off to 30 s): first getMe by
# wait_for_telegram, with a warning each time, then PTB's own bootstrap (deleteWebhook/setWebhook) with -1 =
# for ever. A refused token still stops at once.
START_RETRY_FIRST_S = 0.5
START_RETRY_MAX_S = 30.0
BOOTSTRAP_RETRIES = -1
# PTB's own connection pool for the bot's requests (its getUpdates request has one connection).
COMPAT_POOL_SIZE = 256


def file_base_url(base_url: str) -> str:
    """The file-download URL of a Bot API server given its method URL ("…/bot" → "…/file/bot")."""
    stripped = base_url.rstrip("/")
    return stripped[: -len("/bot")] + "/file/bot" if stripped.endswith("/bot") else base_url


def build_application(
    settings: TelegramSettings,
    service: StickerService,
    *,
    request: BaseRequest | None = None,
    get_updates_request: BaseRequest | None = None,
    rate_limiter: BaseRateLimiter | None = None,
) -> Application:
    """The bot, ready to ``initialize()``/``start()`` or to run. ``request``/``get_updates_request`` replace
    the HTTP layer (tests: an in-memory Bot API; the emulator test: a request adapter); by default a Bot API
    server other than Telegram's gets :class:`~bot.telegram._compat.CompatRequest`."""
    if settings.telegram_token is None:
        raise ValueError("Set TELEGRAM_BOT_TOKEN (environment or .env) to the token BotFather gave you.")
    token = settings.telegram_token.get_secret_value()
    install_redaction(token)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).level))
    for name in CONTENT_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger(name).level))
    builder = (
        Application.builder()
        .token(token)
        .rate_limiter(rate_limiter or AIORateLimiter(max_retries=FLOOD_MAX_RETRIES))
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .concurrent_updates(PerChatUpdateProcessor(CONCURRENT_UPDATES))
    )
    if settings.telegram_base_url:
        builder = builder.base_url(settings.telegram_base_url).base_file_url(
            file_base_url(settings.telegram_base_url)
        )
    if settings.telegram_base_url and needs_compat(settings.telegram_base_url):
        # not Telegram's own server: its answers are read leniently where they break the Bot API (_compat)
        host = urlparse(settings.telegram_base_url).netloc
        request = request or CompatRequest(host, connection_pool_size=COMPAT_POOL_SIZE)
        get_updates_request = get_updates_request or CompatRequest(host)
    if request is not None:
        builder = builder.request(request)
    if get_updates_request is not None:
        builder = builder.get_updates_request(get_updates_request)
    app = builder.build()
    app.bot_data[DEPS_KEY] = Deps(settings, service, AdminCache(settings.telegram_admin_cache_s))
    app.add_handler(TypeHandler(Update, use_sender_language), group=LANGUAGE_GROUP)
    for module in (_help, _history, _sticker, _inline, _packs, _privacy, _membership):
        app.add_handlers(module.handlers())
    app.add_error_handler(on_error)
    if app.job_queue is not None:
        app.job_queue.run_repeating(
            retention_job, interval=RETENTION_INTERVAL_S, first=RETENTION_FIRST_S, name="retention"
        )
    return app


async def _post_init(app: Application) -> None:
    settings = deps_of(app).settings
    if settings.metrics_port is not None:
        from bot.health import HealthServer

        server = HealthServer(deps_of(app).service, settings.metrics_port, settings.metrics_listen)
        app.bot_data[HEALTH_KEY] = await server.start()
    try:
        await set_command_menus(app)
    except TelegramError as exc:  # a nicety: the command menu; never a reason not to start
        log.warning("could not set the command menu: %s", describe(exc))


async def use_sender_language(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    user = update.effective_user
    use_language(user.language_code if user is not None else None)


def command_menu(names: tuple[str, ...], language: str) -> list[BotCommand]:
    return [BotCommand(name, texts.CATALOG.text(f"CMD_{name.upper()}", language)) for name in names]


async def set_command_menus(app: Application) -> None:
    """The command menu: everyone's commands for everyone, and those plus the admin commands for chat
    admins (Telegram shows a user the most specific scope that has commands); each in every language of the
    catalogs, English also as the default for any other language."""
    scopes = (
        (BotCommandScopeDefault(), EVERYONE_COMMANDS),
        (BotCommandScopeAllChatAdministrators(), EVERYONE_COMMANDS + ADMIN_COMMANDS),
    )
    for scope, names in scopes:
        for language in LANGUAGES:
            await app.bot.set_my_commands(
                command_menu(names, language),
                scope=scope,
                language_code=None if language == SOURCE_LANGUAGE else language,
            )


async def _post_shutdown(app: Application) -> None:
    server = app.bot_data.pop(HEALTH_KEY, None)
    if server is not None:
        await server.stop()


def deps_of(app: Application) -> Deps:
    deps_: Deps = app.bot_data[DEPS_KEY]
    return deps_


async def retention_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    deleted = await deps(context).service.apply_retention(PLATFORM)
    if deleted:
        log.info("retention: %d old messages deleted", deleted)


async def wait_for_telegram(app: Application) -> None:
    """Until the Bot API answers ``getMe``: retry with a warning while the network (or Telegram) is down,
    backing off from ``START_RETRY_FIRST_S`` to ``START_RETRY_MAX_S``; a refused token raises at once."""
    delay = START_RETRY_FIRST_S
    while True:
        try:
            await app.bot.initialize()  # getMe
            return
        except (InvalidToken, BadRequest):  # Telegram answered: retrying will not change its answer
            raise
        except (NetworkError, TimedOut) as exc:  # no connection, DNS, timeouts, Telegram's 5xx
            log.warning("Telegram cannot be reached (%s): retrying in %.1f s", describe(exc), delay)
        await asyncio.sleep(delay)
        delay = min(START_RETRY_MAX_S, delay * 2)


def serve_when_reachable(app: Application, settings: TelegramSettings) -> None:
    """:func:`serve` once Telegram answers: while it cannot be reached at start-up, retry (with a warning)
    instead of exiting. Runs on the current event loop."""
    asyncio.get_event_loop().run_until_complete(wait_for_telegram(app))
    serve(app, settings)


def serve(app: Application, settings: TelegramSettings) -> None:
    """Block serving updates: a webhook when ``telegram_webhook_url`` is set, else long polling."""
    if settings.telegram_webhook_url:
        url = settings.telegram_webhook_url
        secret = settings.telegram_webhook_secret
        app.run_webhook(
            listen=settings.telegram_webhook_listen,
            port=settings.telegram_webhook_port,
            url_path=urlparse(url).path.lstrip("/"),
            webhook_url=url,
            secret_token=secret.get_secret_value() if secret else None,
            allowed_updates=ALLOWED_UPDATES,
            close_loop=False,
            bootstrap_retries=BOOTSTRAP_RETRIES,
        )
    else:
        app.run_polling(
            allowed_updates=ALLOWED_UPDATES, close_loop=False, bootstrap_retries=BOOTSTRAP_RETRIES
        )


def run(settings: TelegramSettings) -> None:
    """`stickerpick telegram`: open the service, build the bot, serve until SIGINT/SIGTERM."""
    from bot.operator_texts import startup_error
    from engine.errors import ModelMissing, SchemaOutOfDate
    from engine.service import open_service

    if settings.telegram_token is None:
        raise SystemExit("Set TELEGRAM_BOT_TOKEN (environment or .env) to the token BotFather gave you.")
    install_redaction(settings.telegram_token.get_secret_value())
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        try:
            service = loop.run_until_complete(open_service(settings))
        except (SchemaOutOfDate, ModelMissing) as exc:
            raise SystemExit(startup_error(exc)) from None
        try:
            app = build_application(settings, service)
            mode = "webhook" if settings.telegram_webhook_url else "polling"
            log.info("telegram bot starting (%s, model %s)", mode, service.ranker.version)
            serve_when_reachable(app, settings)
        except InvalidToken:  # one line, no token, no traceback (PTB's text quotes the token)
            log.debug("Telegram refused the token", exc_info=True)  # scrubbed by the redaction
            raise SystemExit(texts.TOKEN_REFUSED) from None
        except Exception as exc:  # anything else at start-up or while serving: one scrubbed line
            log.debug("the Telegram bot stopped", exc_info=exc)
            raise SystemExit(texts.STOPPED.format(error=describe(exc))) from None
        finally:
            loop.run_until_complete(service.close())
    finally:
        loop.close()
