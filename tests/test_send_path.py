"""The delivery worker's lean send path and the limiter's catch-up.

The lean path (care/messaging/delivery/wire.py) must put on the wire what aiogram's
``bot.send_message`` / ``bot.send_photo`` would: the bot's defaults, the chat, the text or photo
and caption, the keyboard. The limiter may make up a moment lost to a late timer, but never
admits more than ``rate`` messages in any one second.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.enums import ParseMode
from aiogram.methods import SendMessage, SendPhoto, TelegramMethod
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from care.messaging.delivery.wire import LeanWire, usable
from care.messaging.ratelimit import CATCH_UP, RateLimiter
from tests.conftest import TEST_TOKEN

MARKUP = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="領取 Claim", callback_data="offer:7")]]
)


def aiogram_fields(bot: Bot, method: TelegramMethod[Any]) -> dict[str, Any]:
    """The fields aiogram's own request carries, decoded from its form values."""
    session = bot.session
    fields: dict[str, Any] = {}
    for key, value in method.model_dump(warnings=False).items():
        prepared = session.prepare_value(value, bot=bot, files={})
        if not prepared:
            continue
        try:
            fields[key] = json.loads(prepared) if key != "text" else prepared
        except ValueError:
            fields[key] = prepared  # a plain string: the text, a file id, "HTML"
    return fields


async def test_the_lean_path_sends_what_aiogram_would_send() -> None:
    defaults = DefaultBotProperties(
        parse_mode=ParseMode.MARKDOWN_V2, link_preview_is_disabled=True, protect_content=True
    )
    bot = Bot(TEST_TOKEN, session=AiohttpSession(), default=defaults)
    try:
        assert usable(bot)
        wire = LeanWire(bot, ParseMode.HTML, request_timeout=20)
        text: dict[str, Any] = {
            "chat_id": 4242,
            "text": "<b>春季特卖</b> 20% off",
            "reply_markup": MARKUP,
        }
        lean = json.loads(wire.message._body(text))
        assert lean == aiogram_fields(bot, SendMessage(**text, parse_mode=ParseMode.HTML))
        assert lean["parse_mode"] == "HTML" and lean["protect_content"] is True
        assert lean["link_preview_options"] == {"is_disabled": True}

        photo: dict[str, Any] = {
            "chat_id": 4242,
            "photo": "AgAD-file-id",
            "caption": None,
            "reply_markup": None,
        }
        lean = json.loads(wire.photo._body(photo))
        assert lean == aiogram_fields(bot, SendPhoto(**photo, parse_mode=ParseMode.HTML))
        assert "caption" not in lean and "reply_markup" not in lean
    finally:
        await bot.session.close()


async def test_a_bot_with_request_middleware_keeps_aiogram_s_own_path() -> None:
    bot = Bot(TEST_TOKEN, session=AiohttpSession())
    try:

        async def middleware(make_request: Any, bot: Bot, method: Any) -> Any:
            return await make_request(bot, method)

        bot.session.middleware(middleware)
        assert not usable(bot)
    finally:
        await bot.session.close()


async def test_the_limiter_makes_up_a_late_moment() -> None:
    limiter = RateLimiter(20, per_chat_interval=0)  # a slot every 50 ms
    loop = asyncio.get_running_loop()
    await limiter.acquire(1)
    time.sleep(0.095)  # noqa: ASYNC251 - on purpose: the loop is held up past the next slot
    resumed = loop.time()
    await limiter.acquire(2)  # the missed slot, at once
    await limiter.acquire(3)  # the one after it, 100 ms after the first: 5 ms from now
    # Restarting the schedule from now would have made the third wait a whole 50 ms.
    assert loop.time() - resumed < 0.03
    assert CATCH_UP >= 0.095


async def test_catching_up_never_admits_more_than_the_rate_in_a_second() -> None:
    rate = 20
    limiter = RateLimiter(rate, per_chat_interval=0)
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def one(chat_id: int) -> None:
        await limiter.acquire(chat_id)
        times.append(loop.time())

    first = [asyncio.create_task(one(n)) for n in range(5)]
    await asyncio.sleep(0.12)
    time.sleep(0.09)  # noqa: ASYNC251 - on purpose: held up with slots reserved ahead
    rest = [asyncio.create_task(one(n)) for n in range(5, 2 * rate + 5)]
    await asyncio.gather(*first, *rest)
    times.sort()
    for start in range(len(times) - rate):
        assert times[start + rate] - times[start] >= 1.0 - 1e-6
