"""CPU per update inside the real dispatcher, without the network or a second process.

The machine this project is measured on is shared and loaded, so updates/s move with the load;
CPU time spent per update does not. This builds carebot's own dispatcher (``create_dispatcher``,
every middleware and router) on a seeded SQLite database, gives it a Bot whose session answers
every Bot API call at once (``sendMessage``/``sendPhoto`` as Telegram would, so the reply is
still validated), and feeds ``--updates`` updates of each kind one after the other, timing the
process's CPU. The anchor bot's dispatcher is measured the same way, in batches that alternate
with carebot's so that a change in the machine's load falls on both; the tenth percentile and
the median of the batches are printed. ``--db postgres`` runs both against a fresh PostgreSQL
database (``BENCH_POSTGRES_URL``); the bot's CPU is counted, and, when the server runs on
this machine, the CPU its backends for that database spent (``server``, from ``/proc``).
``--profile FILE`` writes a cProfile of carebot's part (read it with ``python -m pstats FILE``).

    python -m benchmarks.profile_updates [--db sqlite|postgres] [--updates 400] [--batches 10]
        [--profile /tmp/updates.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.base import BaseSession
from aiogram.enums import ParseMode
from aiogram.methods import GetMe, Response, SendMessage, SendPhoto, TelegramMethod
from aiogram.types import Update
from sqlalchemy import text as sql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from benchmarks.anchor_bot import build_dispatcher as anchor_dispatcher
from benchmarks.bench_updates import (
    CAREBOT_TOKEN,
    FIRST_USER,
    KINDS,
    PG_BASE,
    bench_database,
    seed,
)
from bot.app import create_dispatcher, create_services
from bot.settings import load_settings
from care.core import eventloop

MEMBERS = 400


class AnsweringSession(BaseSession):
    """Answers each call in-process, through aiogram's own response parsing.

    Like carebot's own session (``bot.api_session.BotApiSession``) it keeps each
    ``Response[...]`` class alive, so neither bot's figure includes pydantic rebuilding one after
    a garbage collection. It answers without JSON or forms: neither bot's way of writing a call
    is counted here (``bench_updates`` measures that, over HTTP).
    """

    def __init__(self) -> None:
        super().__init__()
        self._ids = itertools.count(1)
        self._kept: dict[Any, Any] = {}

    def check_response(
        self, bot: Bot, method: TelegramMethod[Any], status_code: int, content: str
    ) -> Response[Any]:
        returning = method.__returning__  # kept alive as bot/api_session.py's session does
        if returning not in self._kept:
            self._kept[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)

    async def make_request(
        self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None
    ) -> Any:
        result: Any = True
        if isinstance(method, GetMe):
            result = {"id": 111111, "is_bot": True, "first_name": "bench", "username": "b_bot"}
        elif isinstance(method, SendMessage | SendPhoto):
            result = {
                "message_id": next(self._ids),
                "date": int(time.time()),
                "chat": {"id": method.chat_id, "type": "private"},
            }
            if isinstance(method, SendPhoto):
                photo = method.photo if isinstance(method.photo, str) else f"F{next(self._ids)}"
                result["photo"] = [
                    {"file_id": photo, "file_unique_id": photo, "width": 400, "height": 400}
                ]
            else:
                result["text"] = method.text
        response = self.check_response(
            bot, method, 200, json.dumps({"ok": True, "result": result})
        )
        return response.result

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        # The profiled updates never download a file; reaching this is a bug in the profile.
        raise RuntimeError(f"the profile's fake session serves no downloads ({url})")
        yield b""  # pragma: no cover - makes this an async generator, as the base class's

    async def close(self) -> None:
        return None


def update(update_id: int, user_id: int, text: str) -> Update:
    message: dict[str, Any] = {
        "message_id": update_id,
        "date": int(time.time()),
        "chat": {"id": user_id, "type": "private", "first_name": "M"},
        "from": {"id": user_id, "is_bot": False, "first_name": "M", "language_code": "zh"},
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    return Update.model_validate({"update_id": update_id, "message": message})


def process_ticks(pid: int) -> int | None:
    """User and system CPU of a process so far, in clock ticks (None: not readable)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


class ServerCpu:
    """CPU seconds spent so far by the PostgreSQL backends serving one database, read from
    ``/proc`` (the server on this machine); None where that cannot be read."""

    def __init__(self, url: str) -> None:
        self.database = make_url(url).database
        self.admin: AsyncEngine = create_async_engine(PG_BASE, isolation_level="AUTOCOMMIT")
        self.ticks = os.sysconf("SC_CLK_TCK")

    async def seconds(self) -> float | None:
        async with self.admin.connect() as connection:
            pids = (
                await connection.scalars(
                    sql("SELECT pid FROM pg_stat_activity WHERE datname = :name"),
                    {"name": self.database},
                )
            ).all()
        ticks = [process_ticks(pid) for pid in pids]
        if any(tick is None for tick in ticks):
            return None
        return sum(tick for tick in ticks if tick is not None) / self.ticks

    async def close(self) -> None:
        await self.admin.dispose()


async def cpu_per_update(
    dp: Dispatcher,
    bot: Bot,
    text: str,
    count: int,
    ids: itertools.count[int],
    server: ServerCpu | None = None,
) -> tuple[float, float | None]:
    """Milliseconds of this process's CPU per update, ``count`` updates one after the other,
    and of the database server's for them when ``server`` can tell."""
    users = itertools.cycle(range(FIRST_USER, FIRST_USER + MEMBERS))
    server_before = await server.seconds() if server else None
    started = time.process_time()
    for _ in range(count):
        await dp.feed_update(bot, update(next(ids), next(users), text))
    own = (time.process_time() - started) / count * 1000
    server_after = await server.seconds() if server else None
    if server_before is None or server_after is None:
        return own, None
    return own, (server_after - server_before) / count * 1000


async def warm(dp: Dispatcher, bot: Bot, text: str, ids: itertools.count[int]) -> None:
    """Statement caches, lazily built schemas, pooled connections, card images."""
    users = itertools.cycle(range(FIRST_USER, FIRST_USER + MEMBERS))
    for _ in range(40):
        await dp.feed_update(bot, update(next(ids), next(users), text))


def spread(figures: list[float]) -> str:
    tenth = statistics.quantiles(figures, n=10)[0] if len(figures) > 1 else figures[0]
    return f"{tenth:5.2f} ms (median {statistics.median(figures):5.2f})"


def server_line(carebot: list[float | None], plain: list[float | None]) -> str:
    if any(figure is None for figure in carebot + plain) or not carebot:
        return ""
    # /proc counts in ticks of 10 ms, so the batches are summed, not taken one by one.
    ours = statistics.fmean([figure for figure in carebot if figure is not None])
    theirs = statistics.fmean([figure for figure in plain if figure is not None])
    return (
        f"\n{'':<12} PostgreSQL's CPU per update: carebot {ours:5.2f} ms, anchor {theirs:5.2f} ms"
    )


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="profile-updates-"))
    async with bench_database(args.db, workdir) as url:
        await seed(url, MEMBERS)
        await measure(url, args)


async def measure(url: str, args: argparse.Namespace) -> None:
    settings = load_settings(bot_token=CAREBOT_TOKEN, database_url=url, admin_ids="1")
    services = create_services(settings)
    bot = Bot(
        CAREBOT_TOKEN,
        session=AnsweringSession(),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )
    dp = create_dispatcher(services)
    anchor = anchor_dispatcher(url)
    ids = itertools.count(1)
    server = ServerCpu(url) if make_url(url).get_backend_name() == "postgresql" else None
    # CPU time, not wall time: a coroutine waiting for the database counts nothing.
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    per_batch = max(1, args.updates // args.batches)
    print(f"{args.db}: {args.batches} batches of {per_batch} updates per bot", flush=True)
    try:
        for kind, text in KINDS:
            if args.kind and kind != args.kind:
                continue
            if text == "/card":  # every member's card sent once: a returning member's card
                for user_id in range(FIRST_USER, FIRST_USER + MEMBERS):
                    await dp.feed_update(bot, update(next(ids), user_id, text))
            await warm(dp, bot, text, ids)
            await warm(anchor, bot, text, ids)
            carebot: list[float] = []
            plain: list[float] = []
            carebot_server: list[float | None] = []
            plain_server: list[float | None] = []
            for _batch in range(args.batches):
                if profiler:
                    profiler.enable()
                own, served = await cpu_per_update(dp, bot, text, per_batch, ids, server)
                if profiler:
                    profiler.disable()
                carebot.append(own)
                carebot_server.append(served)
                own, served = await cpu_per_update(anchor, bot, text, per_batch, ids, server)
                plain.append(own)
                plain_server.append(served)
            ratio = statistics.median(plain) / statistics.median(carebot)
            print(
                f"{kind:<12} carebot {spread(carebot)}   anchor {spread(plain)}   "
                f"ratio of median CPU {ratio:4.2f}x" + server_line(carebot_server, plain_server),
                flush=True,
            )
    finally:
        if server:
            await server.close()
        await anchor.emit_shutdown()
        await services.engine.dispose()
        await bot.session.close()
    if profiler and args.profile:
        profiler.dump_stats(args.profile)
        print(f"profile of carebot's updates: {args.profile}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--updates", type=int, default=400, help="per kind and bot, in all")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--profile")
    parser.add_argument("--kind", choices=[kind for kind, _text in KINDS])
    eventloop.run(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
