"""``python -m care.messaging.delivery``: drain the outbox once, or until stopped.

Reads the same settings as the bot (environment, then ``.env`` in the working directory):
``DATABASE_URL``, ``BOT_TOKEN``, ``TELEGRAM_API_URL``, ``SEND_RATE`` and ``REDIS_URL`` (with
Redis the send rate is shared with every other worker and bot replica). Flags override them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
from datetime import timedelta

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from pydantic_settings import BaseSettings, SettingsConfigDict

from care.core.clock import Clock
from care.core.config import CareConfig
from care.messaging.delivery.worker import DeliveryWorker
from care.messaging.ratelimit import RateLimiter, RedisRateLimiter, SendLimiter
from storage.db import create_engine, create_session_factory

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/carebot.db"


class WorkerSettings(BaseSettings):
    """The few bot settings a standalone worker needs, read like the bot reads them."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", env_ignore_empty=True, extra="ignore"
    )

    database_url: str = DEFAULT_DATABASE_URL
    telegram_api_url: str = "https://api.telegram.org"
    bot_token: str | None = None
    send_rate: float = CareConfig().send_rate
    redis_url: str | None = None


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = WorkerSettings()
    parser = argparse.ArgumentParser(
        prog="python -m care.messaging.delivery",
        description="Drain the outbox once, or until stopped (SIGTERM/SIGINT stop cleanly). "
        "Defaults come from the environment and .env, as for the bot.",
    )
    parser.add_argument("--database-url", default=env.database_url)
    parser.add_argument("--api-url", default=env.telegram_api_url)
    parser.add_argument("--token", default=env.bot_token, help="default: $BOT_TOKEN")
    parser.add_argument(
        "--rate", type=float, default=env.send_rate, help="messages/s (default: $SEND_RATE)"
    )
    parser.add_argument(
        "--redis-url", default=env.redis_url, help="share the send rate through Redis"
    )
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lease-seconds", type=float)
    parser.add_argument("--forever", action="store_true", help="keep draining until stopped")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("needs --token (or BOT_TOKEN in the environment or .env)")
    return args


def _limiter(args: argparse.Namespace, config: CareConfig) -> SendLimiter:
    if args.redis_url:
        from redis.asyncio import Redis

        return RedisRateLimiter(
            Redis.from_url(args.redis_url), config.send_rate, config.per_chat_interval
        )
    return RateLimiter(config.send_rate, config.per_chat_interval)


async def _standalone(args: argparse.Namespace) -> None:
    engine = create_engine(args.database_url)
    session = AiohttpSession(api=TelegramAPIServer.from_base(args.api_url))
    bot = Bot(args.token, session=session)
    config = CareConfig(send_rate=args.rate)
    limiter = _limiter(args, config)
    worker = DeliveryWorker(
        bot,
        create_session_factory(engine),
        config,
        Clock(),
        limiter=limiter,
        batch_size=args.batch_size,
        lease=timedelta(seconds=args.lease_seconds) if args.lease_seconds else None,
    )
    # As in the bot process: keep start-up's long-lived objects out of full collections.
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if args.forever:
            await worker.run(stop)
        else:
            while await worker.drain_once(stop):
                pass
    finally:
        await bot.session.close()
        await engine.dispose()
        redis = getattr(limiter, "redis", None)
        if redis is not None:
            await redis.aclose()
    print(worker.stats, flush=True)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_standalone(_parse_args(argv)))


if __name__ == "__main__":
    main()
