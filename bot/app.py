"""Assembly: settings in, a ready bot, dispatcher and database out. Nothing runs at import."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramUnauthorizedError
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.types import BotCommand, BotCommandScopeDefault, ErrorEvent
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.fsm import SqlFsmStorage
from bot.middlewares import UpdateLogMiddleware
from bot.settings import Settings
from bot.startup import StartupError, check_database
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import LOCALES, normalize_locale, translator
from care.scheduler import CareScheduler
from handlers import build_routers
from handlers.middlewares import (
    DbSessionMiddleware,
    FloodGate,
    MemberContextMiddleware,
    MemoryFloodGate,
    RedisFloodGate,
    ThrottlingMiddleware,
)
from storage import migrate
from storage.db import create_engine, create_session_factory

log = logging.getLogger("carebot")

SHUTDOWN_GRACE_SECONDS = 10.0
# Per shopper: 6 updates at once, then 3 a second; an update that would wait over 3 s is dropped.
FLOOD_RATE, FLOOD_BURST, FLOOD_MAX_WAIT = 3.0, 6, 3.0
MENU_COMMANDS = (
    "start",
    "menu",
    "card",
    "offers",
    "points",
    "rewards",
    "feedback",
    "invite",
    "settings",
    "mydata",
    "help",
)


@dataclass
class Services:
    """What every part of the running bot shares."""

    settings: Settings
    config: CareConfig
    clock: Clock
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    extras: dict[str, Any] = field(default_factory=dict)


def create_bot(settings: Settings) -> Bot:
    if settings.bot_token is None:
        raise StartupError("BOT_TOKEN is not set")
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    return Bot(
        settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


def create_services(settings: Settings, clock: Clock | None = None) -> Services:
    engine = create_engine(settings.database_url)
    return Services(
        settings=settings,
        config=settings.care_config(),
        clock=clock or Clock(),
        engine=engine,
        session_factory=create_session_factory(engine),
    )


def _fsm_parts(services: Services) -> tuple[BaseStorage, BaseEventIsolation]:
    if services.settings.redis_url:
        from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage

        storage = RedisStorage.from_url(services.settings.redis_url)
        return storage, RedisEventIsolation(storage.redis)
    return SqlFsmStorage(services.session_factory, services.clock), SimpleEventIsolation()


def _flood_gate(services: Services) -> FloodGate:
    if services.settings.redis_url:
        from redis.asyncio import Redis

        redis = Redis.from_url(services.settings.redis_url)
        return RedisFloodGate(redis, FLOOD_RATE, FLOOD_BURST, FLOOD_MAX_WAIT)
    return MemoryFloodGate(FLOOD_RATE, FLOOD_BURST, FLOOD_MAX_WAIT)


def create_dispatcher(services: Services) -> Dispatcher:
    """A fresh dispatcher with every router and middleware; tests build one per test."""
    storage, isolation = _fsm_parts(services)
    update_log = UpdateLogMiddleware()
    dp = Dispatcher(
        storage=storage,
        events_isolation=isolation,
        config=services.config,
        clock=services.clock,
        session_factory=services.session_factory,
        shop_name=services.settings.shop_name,
        services=services,
        update_log=update_log,
    )
    # Logging and flood control see each update as it arrives: before per-user isolation (part
    # of the FSM middleware) queues a flooder's updates one behind the other, and before a
    # database connection is taken.
    dp.update.outer_middleware.unregister(dp.fsm)
    dp.update.outer_middleware(update_log)
    dp.update.outer_middleware(ThrottlingMiddleware(_flood_gate(services)))
    dp.update.outer_middleware(dp.fsm)
    dp.update.outer_middleware(DbSessionMiddleware(services.session_factory))
    dp.update.outer_middleware(MemberContextMiddleware(services.config))
    dp.include_routers(*build_routers())
    dp.errors.register(on_error)
    dp.shutdown.register(on_shutdown)
    return dp


async def on_error(event: ErrorEvent, bot: Bot, config: CareConfig) -> None:
    """Log the failure with its context and tell the person, politely, in their language."""
    update = event.update
    user = None
    chat_id = None
    if update.message:
        user, chat_id = update.message.from_user, update.message.chat.id
    elif update.callback_query:
        user = update.callback_query.from_user
        message = update.callback_query.message
        chat_id = message.chat.id if message else None
    log.error(
        "update %s (%s) from user %s failed: %r",
        update.update_id,
        update.event_type,
        user.id if user else "-",
        event.exception,
        exc_info=event.exception,
    )
    if chat_id is None:
        return
    t = translator(normalize_locale(user.language_code if user else None, config.default_locale))
    try:
        await bot.send_message(chat_id, t("common.error"))
    except TelegramAPIError:
        log.warning("could not tell chat %s about the failure", chat_id)


async def on_shutdown(update_log: UpdateLogMiddleware) -> None:
    if not await update_log.wait_idle(SHUTDOWN_GRACE_SECONDS):
        log.warning("%s updates still running at shutdown", update_log.in_flight)


async def check_bot(bot: Bot, api_url: str) -> None:
    try:
        me = await bot.get_me()
    except TelegramUnauthorizedError:
        raise StartupError(
            f"the Bot API at {api_url} refused BOT_TOKEN (401 Unauthorized): "
            "check the token @BotFather gave you"
        ) from None
    except TelegramNetworkError as exc:
        raise StartupError(f"cannot reach the Bot API at {api_url}: {exc.message}") from None
    except TelegramAPIError as exc:
        raise StartupError(f"the Bot API at {api_url} answered: {exc.message}") from None
    log.info("connected as @%s (id %s)", me.username, me.id)


async def set_commands(bot: Bot, default_locale: str) -> None:
    for locale in LOCALES:
        t = translator(locale)
        commands = [BotCommand(command=c, description=t(f"commands.{c}")) for c in MENU_COMMANDS]
        await bot.set_my_commands(commands, BotCommandScopeDefault(), language_code=locale)
        if locale == default_locale:
            await bot.set_my_commands(commands, BotCommandScopeDefault())


async def serve_webhook(dp: Dispatcher, bot: Bot, settings: Settings) -> None:
    """Answer Telegram's webhook posts until SIGTERM/SIGINT (the way to run several replicas).

    Updates are acknowledged at once and handled in the background, so Telegram never re-sends
    a slow one; the secret token keeps strangers from posting fake updates.
    """
    assert settings.webhook_url is not None and settings.webhook_secret is not None
    secret = settings.webhook_secret.get_secret_value()
    path = urlsplit(settings.webhook_url).path or "/"
    app = web.Application()
    SimpleRequestHandler(dispatcher=dp, bot=bot, secret_token=secret).register(app, path=path)
    app.router.add_get("/healthz", _healthz)
    setup_application(app, dp, bot=bot)

    host, port = settings.webhook_listen.rsplit(":", 1)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, host, int(port)).start()
        await bot.set_webhook(
            settings.webhook_url,
            secret_token=secret,
            allowed_updates=dp.resolve_used_update_types(),
        )
        log.info("webhook listening on %s, path %s", settings.webhook_listen, path)
        await stop.wait()
        log.info("stop signal received")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        # Runs the dispatcher's shutdown, which waits for updates still being handled.
        await runner.cleanup()


async def _healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def run(settings: Settings) -> None:
    """Migrate, connect, and take updates (long polling, or a webhook when WEBHOOK_URL is set)
    until SIGTERM/SIGINT; then finish the updates in flight and close the database."""
    services = create_services(settings)
    try:
        await check_database(services.engine)
        await migrate.upgrade(services.engine)
        bot = create_bot(settings)
        try:
            await check_bot(bot, settings.telegram_api_url)
            await set_commands(bot, settings.default_locale)
            dp = create_dispatcher(services)
            # What start-up built lives as long as the process: keep it out of the collector's
            # full passes, which would otherwise stall the loop (and the sending) for ~0.3 s.
            gc.freeze()
            # The care schedule runs only in the real process: tests drive it themselves.
            care_scheduler = CareScheduler(
                bot, services.session_factory, services.config, services.clock
            )
            dp.startup.register(care_scheduler.start)
            dp.shutdown.register(care_scheduler.stop)
            if settings.webhook_url:
                await serve_webhook(dp, bot, settings)
            else:
                await bot.delete_webhook(drop_pending_updates=False)
                await dp.start_polling(
                    bot, handle_signals=True, allowed_updates=dp.resolve_used_update_types()
                )
        finally:
            await bot.session.close()
    finally:
        await services.engine.dispose()
        log.info("stopped")
