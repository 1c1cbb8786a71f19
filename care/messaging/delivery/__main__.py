"""``python -m care.messaging.delivery``: drain the outbox once, or until stopped.

Reads the same settings as the bot (environment, then ``.env`` in the working directory):
``DATABASE_URL``, ``BOT_TOKEN``, ``TELEGRAM_API_URL``, ``SEND_RATE`` and ``REDIS_URL`` (with
Redis the send rate is shared with every other worker and bot replica). Flags override them.
"""

from __future__ import annotations

import argparse
import logging
from datetime import timedelta

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from pydantic_settings import BaseSettings, SettingsConfigDict

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.eventloop import run
from care.messaging.delivery.standalone import serve
from care.messaging.delivery.worker import DeliveryWorker
from care.messaging.ratelimit import close_limiter, create_limiter
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


async def _standalone(args: argparse.Namespace) -> None:
    engine = create_engine(args.database_url)
    session = AiohttpSession(api=TelegramAPIServer.from_base(args.api_url))
    bot = Bot(args.token, session=session)
    config = CareConfig(send_rate=args.rate)
    limiter = create_limiter(config.send_rate, config.per_chat_interval, args.redis_url)
    worker = DeliveryWorker(
        bot,
        create_session_factory(engine),
        config,
        Clock(),
        limiter=limiter,
        batch_size=args.batch_size,
        lease=timedelta(seconds=args.lease_seconds) if args.lease_seconds else None,
    )
    try:
        await serve(worker, forever=args.forever)
    finally:
        await bot.session.close()
        await engine.dispose()
        await close_limiter(limiter)
    print(worker.stats, flush=True)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run(_standalone(_parse_args(argv)))


if __name__ == "__main__":
    main()
