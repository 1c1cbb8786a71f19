"""Assembly: settings in, a ready bot, dispatcher and database out. Nothing runs at import."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramServerError,
)
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.types import BotCommand, BotCommandScopeDefault, ErrorEvent
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.api_session import BotApiSession, json_dumps
from bot.fsm import RedisFsmStorage, SqlFsmStorage
from bot.middlewares import UpdateLogMiddleware, update_type
from bot.settings import Settings
from bot.startup import StartupError, check_database
from bot.web import UpdateMetricsMiddleware, WebFront
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import LOCALES, normalize_locale, translator
from care.loyalty.cards import CardPhotos
from care.messaging.ratelimit import SendLimiter
from care.messaging.ratelimit import create_limiter as create_send_limiter
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
from handlers.ordering import QueuedEventIsolation, RedisUpdateQueue, UpdateQueueMiddleware
from handlers.shopper.points import history_wanted as points_history_wanted
from storage import migrate
from storage.db import create_engine, create_session_factory, is_sqlite

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
    # orjson reads each Bot API answer and writes the reply markups in a fraction of the
    # standard library's time; every update pays at least one of each.
    session = BotApiSession(
        api=TelegramAPIServer.from_base(settings.telegram_api_url),
        json_loads=orjson.loads,
        json_dumps=json_dumps,
    )
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


def _fsm_parts(
    services: Services,
) -> tuple[BaseStorage, BaseEventIsolation, RedisUpdateQueue | None]:
    if services.settings.redis_url:
        from aiogram.fsm.storage.redis import RedisEventIsolation

        storage = RedisFsmStorage.from_url(services.settings.redis_url)
        queue = RedisUpdateQueue(storage.redis)
        isolation = QueuedEventIsolation(queue, RedisEventIsolation(storage.redis))
        return storage, isolation, queue
    storage_ = SqlFsmStorage(services.session_factory, services.clock)
    return storage_, SimpleEventIsolation(), None


def _flood_gate(services: Services) -> FloodGate:
    if services.settings.redis_url:
        from redis.asyncio import Redis

        redis = Redis.from_url(services.settings.redis_url)
        return RedisFloodGate(redis, FLOOD_RATE, FLOOD_BURST, FLOOD_MAX_WAIT)
    return MemoryFloodGate(FLOOD_RATE, FLOOD_BURST, FLOOD_MAX_WAIT)


def create_dispatcher(services: Services) -> Dispatcher:
    """A fresh dispatcher with every router and middleware; tests build one per test."""
    storage, isolation, queue = _fsm_parts(services)
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
        card_photos=CardPhotos(),
    )
    # Logging and flood control see each update as it arrives: before per-user isolation (part
    # of the FSM middleware) queues a flooder's updates one behind the other, and before a
    # database connection is taken. With Redis each update takes its place in its user's queue
    # first of all, so the order is fixed before any round trip could shuffle it.
    dp.update.outer_middleware.unregister(dp.fsm)
    dp.update.outer_middleware(UpdateMetricsMiddleware())
    dp.update.outer_middleware(update_log)
    if queue is not None:
        dp.update.outer_middleware(UpdateQueueMiddleware(queue))
    dp.update.outer_middleware(ThrottlingMiddleware(_flood_gate(services)))
    dp.update.outer_middleware(dp.fsm)
    dp.update.outer_middleware(DbSessionMiddleware(services.session_factory, services.clock))
    dp.update.outer_middleware(
        MemberContextMiddleware(services.config, history_wanted=points_history_wanted)
    )
    dp.include_routers(*build_routers())
    dp.errors.register(on_error)
    dp.shutdown.register(on_shutdown)
    return dp


# Failures that pass on their own: with a webhook the update is answered non-2xx and Telegram
# sends it again, instead of telling the person something went wrong.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    OSError,
    TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
    TelegramNetworkError,
    TelegramServerError,
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, TRANSIENT_ERRORS)


async def on_error(
    event: ErrorEvent, bot: Bot, config: CareConfig, retry_transient: bool = False
) -> None:
    """Log the failure with its context and tell the person, politely, in their language.

    With ``retry_transient`` (webhook mode) a passing failure is raised on instead, so the
    webhook answers non-2xx and Telegram delivers the update again.
    """
    update = event.update
    if retry_transient and is_transient(event.exception):
        raise event.exception
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
        update_type(update),
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


async def set_commands(bot: Bot, default_locale: str) -> None:
    for locale in LOCALES:
        t = translator(locale)
        commands = [BotCommand(command=c, description=t(f"commands.{c}")) for c in MENU_COMMANDS]
        await bot.set_my_commands(commands, BotCommandScopeDefault(), language_code=locale)
        if locale == default_locale:
            await bot.set_my_commands(commands, BotCommandScopeDefault())


async def register_webhook(dp: Dispatcher, bot: Bot, settings: Settings) -> None:
    """Tell Telegram where to post updates (the way to run several replicas)."""
    assert settings.webhook_url is not None and settings.webhook_secret is not None
    await bot.set_webhook(
        settings.webhook_url,
        secret_token=settings.webhook_secret.get_secret_value(),
        allowed_updates=dp.resolve_used_update_types(),
    )
    log.info(
        "webhook listening on %s, path %s",
        settings.webhook_listen,
        urlsplit(settings.webhook_url).path or "/",
    )


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("stop signal received")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def create_limiter(settings: Settings, config: CareConfig) -> SendLimiter:
    """The send limiter: shared by every replica through Redis when there is one."""
    return create_send_limiter(config.send_rate, config.per_chat_interval, settings.redis_url)


def create_web_front(services: Services) -> WebFront:
    settings = services.settings
    path = (urlsplit(settings.webhook_url).path or "/") if settings.webhook_url else None
    return WebFront(
        services.engine,
        services.session_factory,
        redis_url=settings.redis_url,
        webhook_path=path,
        webhook_secret=(
            settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        ),
    )


async def run(settings: Settings) -> None:
    """Migrate, connect, and take updates (long polling, or a webhook when WEBHOOK_URL is set)
    until SIGTERM/SIGINT; then finish the updates in flight and close the database.

    The HTTP side (the webhook, or ``METRICS_LISTEN`` when polling) is up from the start, so
    ``/readyz`` tells "migrating" from "ready"."""
    services = create_services(settings)
    front = create_web_front(services)
    listen = settings.webhook_listen if settings.webhook_url else settings.metrics_listen
    try:
        await check_database(services.engine)
        if listen:
            await front.start(listen)
        front.state = "migrating"
        await migrate.upgrade(services.engine)
        if not settings.redis_url and not is_sqlite(services.engine):
            log.warning(
                "REDIS_URL is not set: the send rate, per-user update order and flood control "
                "hold per process; run a single replica or set REDIS_URL"
            )
        bot = create_bot(settings)
        try:
            await set_commands(bot, settings.default_locale)
            dp = create_dispatcher(services)
            # What start-up built lives as long as the process: keep it out of the collector's
            # full passes, which would otherwise stall the loop (and the sending) for ~0.3 s.
            # The collector was off while it was built (``bot.cli.cmd_run``): on from here.
            gc.freeze()
            gc.enable()
            # The care schedule runs only in the real process: tests drive it themselves.
            care_scheduler = CareScheduler(
                bot,
                services.session_factory,
                services.config,
                services.clock,
                limiter=create_limiter(settings, services.config),
            )
            dp.startup.register(care_scheduler.start)
            dp.shutdown.register(care_scheduler.stop)
            front.attach(dp, bot)
            if settings.webhook_url:
                dp["retry_transient"] = True
                lifecycle = {**dp.workflow_data, "dispatcher": dp, "bot": bot}
                await dp.emit_startup(**lifecycle)
                try:
                    await register_webhook(dp, bot, settings)
                    front.state = "ready"
                    await wait_for_signal()
                finally:
                    front.state = "stopping"
                    # Waits for the updates still being handled and stops the schedule.
                    await dp.emit_shutdown(**lifecycle)
            else:
                front.state = "ready"
                await bot.delete_webhook(drop_pending_updates=False)
                await dp.start_polling(
                    bot, handle_signals=True, allowed_updates=dp.resolve_used_update_types()
                )
        finally:
            await bot.session.close()
    finally:
        front.state = "stopping"
        await front.stop()
        await services.engine.dispose()
        log.info("stopped")
