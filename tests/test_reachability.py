"""Reachability: blocking the bot marks the member unreachable at once; unblocking undoes it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from storage.models import Member
from tests.conftest import RunningBot
from tests.journey_helpers import eventually, member_of, register, settled, without_throttling


@pytest.fixture
def app(app: RunningBot) -> RunningBot:
    return without_throttling(app)


async def blocked_at(app: RunningBot, telegram_id: int) -> object:
    member = await member_of(app, telegram_id)
    assert member is not None
    return member.blocked_at


async def test_blocking_marks_unreachable_and_unblocking_reachable(app: RunningBot) -> None:
    user = app.user(6001, language_code="zh")
    await register(user, "zh")
    assert await blocked_at(app, 6001) is None

    await user.block()

    async def is_blocked() -> bool:
        return await blocked_at(app, 6001) is not None

    await eventually(is_blocked, "the member is unreachable")
    assert await blocked_at(app, 6001) == app.clock.now()

    app.clock.advance(timedelta(days=3))
    await user.unblock()

    async def is_reachable() -> bool:
        return await blocked_at(app, 6001) is None

    await eventually(is_reachable, "the member is reachable again")
    # And the bot talks to them as before.
    await user.send("/card")
    await user.wait_until(lambda m: m.photo is not None)


async def test_a_stranger_blocking_the_bot_leaves_no_trace(app: RunningBot) -> None:
    stranger = app.user(6002, language_code="en")
    await stranger.block()
    await stranger.unblock()
    # Updates of one chat are handled in order: once /help is answered, both were handled.
    await stranger.send("/help")
    await stranger.expect("/start")
    await settled(app)
    async with app.session() as session:
        count = await session.scalar(select(func.count()).select_from(Member))
    assert count == 0
