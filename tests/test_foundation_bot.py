"""The assembled bot answers through the real aiogram Bot, and survives a failing handler."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy import func, select

from care.core.clock import FrozenClock
from storage.models import Member
from tests.conftest import RunningBot, running_bot
from tests.simulator import BotAPISimulator


async def test_start_registers_the_user_as_a_member(app: RunningBot) -> None:
    user = app.user(1001, first_name="Wang", language_code="zh")
    await user.send("/start")
    await user.next_message()
    await app.settle()

    async with app.session() as session:
        member = await session.scalar(select(Member).where(Member.telegram_id == 1001))
    assert member is not None
    assert member.locale == "zh"
    assert len(member.member_code) == 8


async def test_help_lists_what_the_bot_can_do_in_each_language(app: RunningBot) -> None:
    zh = app.user(1002, language_code="zh-hans")
    en = app.user(1003, language_code="en")
    await zh.send("/help")
    await en.send("/help")
    assert "/start" in (await zh.next_message()).text
    assert "我能做什么" in zh.last_message.text
    assert "What I can do" in (await en.next_message()).text


async def test_start_twice_does_not_register_twice(app: RunningBot) -> None:
    user = app.user(1004, language_code="en")
    await user.send("/start")
    await user.next_message()
    await user.send("/start")
    await user.next_message()
    await app.settle()
    async with app.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Member).where(Member.telegram_id == 1004)
        )
    assert count == 1


async def test_unknown_command_gets_a_polite_answer(app: RunningBot) -> None:
    user = app.user(1005, language_code="en")
    await user.send("/frobnicate")
    reply = await user.next_message()
    assert "don't know that command" in reply.text


async def test_a_failing_handler_is_logged_and_the_bot_keeps_serving(
    app: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    boom = Router(name="boom")

    async def explode(message: Message) -> None:
        raise RuntimeError("kaput")

    boom.message.register(explode, Command("boom"))
    app.dp.include_router(boom)
    # The fallback router was included first and would answer /boom; move ours ahead of it.
    app.dp.sub_routers.insert(0, app.dp.sub_routers.pop())

    user = app.user(1006, language_code="en")
    with caplog.at_level(logging.ERROR, logger="carebot"):
        await user.send("/boom")
        apology = await user.next_message()
    assert "something went wrong" in apology.text
    assert any(
        "kaput" in record.getMessage() and "1006" in record.getMessage()
        for record in caplog.records
    )

    await user.send("/help")
    assert "What I can do" in (await user.next_message()).text


async def test_html_in_a_name_is_escaped(app: RunningBot) -> None:
    user = app.user(1007, first_name="<b>Bob</b> & co", language_code="en")
    await user.send("/start")
    reply = await user.next_message()
    assert "<b>Bob</b> & co" in reply.text


async def test_shutdown_finishes_the_updates_in_flight(
    sim: BotAPISimulator, sqlite_url: str, clock: FrozenClock
) -> None:
    started = asyncio.Event()

    async def slow(message: Message) -> None:
        started.set()
        await asyncio.sleep(0.5)
        await message.answer("finished")

    async with running_bot(sim, sqlite_url, clock) as app:
        slow_router = Router(name="slow")
        slow_router.message.register(slow, Command("slow"))
        app.dp.include_router(slow_router)
        app.dp.sub_routers.insert(0, app.dp.sub_routers.pop())
        user = app.user(1008, language_code="en")
        await user.send("/slow")
        await asyncio.wait_for(started.wait(), timeout=5)
        await app.dp.stop_polling()  # what SIGTERM does
        await asyncio.sleep(0)  # let the polling task finish
        assert user.last_message is not None
        assert user.last_message.text == "finished"
