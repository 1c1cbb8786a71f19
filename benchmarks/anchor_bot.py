"""The anchor for the updates benchmark: the plainest aiogram 3 + SQLAlchemy async bot.

One session and one SELECT of the member per update, one reply; no middlewares, no FSM
storage of its own beyond aiogram's default, no scheduler. It is what "a plain bot" costs on this
machine, measured in the same run as carebot against the same fake Bot API and database.

    python -m benchmarks.anchor_bot --db URL --api URL --token T [--webhook URL --listen H:P]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher, F
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.filters import Command
from aiogram.types import Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from sqlalchemy import BigInteger, String, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Member(Base):
    __tablename__ = "members"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    telegram_id: Mapped[int | None] = mapped_column(BigInteger)
    member_code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(128))
    points_balance: Mapped[int] = mapped_column(BigInteger)


def build_dispatcher(database_url: str) -> Dispatcher:
    engine = create_async_engine(database_url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    dp = Dispatcher()

    async def load(message: Message) -> Member | None:
        assert message.from_user is not None
        async with sessions() as session:
            return await session.scalar(
                select(Member).where(Member.telegram_id == message.from_user.id)
            )

    @dp.message(Command("points"))
    async def points(message: Message) -> None:
        member = await load(message)
        await message.answer(f"Points: {member.points_balance if member else 0}")

    @dp.message(Command("card"))
    async def card(message: Message) -> None:
        member = await load(message)
        await message.answer(f"Card {member.member_code if member else '-'}")

    @dp.message(F.text)
    async def other(message: Message) -> None:
        member = await load(message)
        await message.answer(f"Hello, {member.name if member else 'stranger'}")

    dp.shutdown.register(engine.dispose)
    return dp


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--api", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--webhook")
    parser.add_argument("--secret", default="bench-secret-0123456789")
    parser.add_argument("--listen", default="127.0.0.1:8091")
    args = parser.parse_args()
    bot = Bot(
        args.token,
        session=AiohttpSession(api=TelegramAPIServer.from_base(args.api)),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )
    dp = build_dispatcher(args.db)
    await bot.get_me()
    if not args.webhook:
        await bot.delete_webhook()
        await dp.start_polling(bot, handle_signals=True)
        return
    app = web.Application()
    SimpleRequestHandler(dispatcher=dp, bot=bot, secret_token=args.secret).register(
        app, path=urlsplit(args.webhook).path
    )
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    host, port = args.listen.rsplit(":", 1)
    await web.TCPSite(runner, host, int(port)).start()
    await bot.set_webhook(args.webhook, secret_token=args.secret)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    await dp.emit_shutdown()
    await bot.session.close()


if __name__ == "__main__":
    asyncio.run(main())
