"""CPU per update inside the real dispatcher, without the network or a second process.

The machine this project is measured on is shared and loaded, so updates/s move with the load;
CPU time spent per update does not. This builds carebot's own dispatcher (``create_dispatcher``,
every middleware and router) on a seeded SQLite database, gives it a Bot whose session answers
every Bot API call at once (``sendMessage``/``sendPhoto`` as Telegram would, so the reply is
still validated), and feeds ``--updates`` updates of each kind one after the other, timing the
process's CPU. The anchor bot's dispatcher is measured the same way, in batches that alternate
with carebot's so that a change in the machine's load falls on both; the tenth percentile and
the median of the batches are printed. ``--db postgres`` runs both against a fresh PostgreSQL
database (``BENCH_POSTGRES_URL``), where the server's CPU is not counted, only the bot's.
``--profile FILE`` writes a cProfile of carebot's part (read it with ``python -m pstats FILE``).

    python -m benchmarks.profile_updates [--db sqlite|postgres] [--updates 400] [--batches 10]
        [--profile /tmp/updates.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.base import BaseSession
from aiogram.enums import ParseMode
from aiogram.methods import GetMe, Response, SendMessage, SendPhoto, TelegramMethod
from aiogram.types import Update

from benchmarks.anchor_bot import build_dispatcher as anchor_dispatcher
from benchmarks.bench_updates import CAREBOT_TOKEN, FIRST_USER, KINDS, bench_database, seed
from bot.app import create_dispatcher, create_services
from bot.settings import load_settings
from care.core import eventloop

MEMBERS = 400


class AnsweringSession(BaseSession):
    """Answers each call in-process, through aiogram's own response parsing.

    Like carebot's own session (``bot.app.BotApiSession``) it keeps each ``Response[...]`` class
    alive, so neither bot's figure includes pydantic rebuilding one after a garbage collection.
    """

    def __init__(self) -> None:
        super().__init__()
        self._ids = itertools.count(1)
        self._kept: dict[Any, Any] = {}

    def check_response(
        self, bot: Bot, method: TelegramMethod[Any], status_code: int, content: str
    ) -> Response[Any]:
        if method.__returning__ not in self._kept:
            self._kept[method.__returning__] = Response[method.__returning__]
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

    async def stream_content(self, *args: Any, **kwargs: Any) -> Any:
        # The profiled updates never download a file; reaching this is a bug in the profile.
        raise NotImplementedError("the profile's fake session serves no downloads")

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


async def cpu_per_update(
    dp: Dispatcher, bot: Bot, text: str, count: int, ids: itertools.count[int]
) -> float:
    """Milliseconds of this process's CPU per update, ``count`` updates one after the other."""
    users = itertools.cycle(range(FIRST_USER, FIRST_USER + MEMBERS))
    started = time.process_time()
    for _ in range(count):
        await dp.feed_update(bot, update(next(ids), next(users), text))
    return (time.process_time() - started) / count * 1000


async def warm(dp: Dispatcher, bot: Bot, text: str, ids: itertools.count[int]) -> None:
    """Statement caches, lazily built schemas, pooled connections, card images."""
    users = itertools.cycle(range(FIRST_USER, FIRST_USER + MEMBERS))
    for _ in range(40):
        await dp.feed_update(bot, update(next(ids), next(users), text))


def spread(figures: list[float]) -> str:
    tenth = statistics.quantiles(figures, n=10)[0] if len(figures) > 1 else figures[0]
    return f"{tenth:5.2f} ms (median {statistics.median(figures):5.2f})"


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
            for _batch in range(args.batches):
                if profiler:
                    profiler.enable()
                carebot.append(await cpu_per_update(dp, bot, text, per_batch, ids))
                if profiler:
                    profiler.disable()
                plain.append(await cpu_per_update(anchor, bot, text, per_batch, ids))
            ratio = statistics.median(plain) / statistics.median(carebot)
            print(
                f"{kind:<12} carebot {spread(carebot)}   anchor {spread(plain)}   "
                f"ratio of median CPU {ratio:4.2f}x",
                flush=True,
            )
    finally:
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
