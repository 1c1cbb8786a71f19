"""Helpers for end-to-end tests of the shopper's journey: register a member by pressing buttons."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from care.core.i18n import translator
from handlers.middlewares import MemoryFloodGate, ThrottlingMiddleware
from storage.models import Member
from tests.conftest import RunningBot
from tests.simulator import SimMessage, SimUser


def without_throttling(app: RunningBot) -> RunningBot:
    """Let a test press buttons faster than any person could (flood control has its own test)."""
    for middleware in app.dp.update.outer_middleware:
        if isinstance(middleware, ThrottlingMiddleware):
            middleware.gate = MemoryFloodGate(rate=10_000.0, burst=10_000, max_wait=3.0)
    return app


def label(locale: str, key: str, **values: object) -> str:
    """A button label exactly as the bot renders it."""
    return translator(locale).plain(key, **values)


def buttons(message: SimMessage) -> list[str]:
    return [text for row in message.inline_buttons + message.reply_buttons for text in row]


async def wait_button(user: SimUser, text: str, timeout: float = 5.0) -> SimMessage:
    """Wait for a bot message (new or edited since the user's last action) with this button."""
    return await user.wait_until(lambda m: text in buttons(m), timeout)


async def register(
    user: SimUser,
    locale: str = "en",
    *,
    marketing: bool = False,
    name: str | None = None,
    birthday: str | None = None,
    interests: tuple[str, ...] = (),
    start: str = "/start",
) -> None:
    """Walk the whole registration as the shopper would, pressing the buttons the bot sent."""
    await user.send(start)
    await wait_button(user, "English")
    await user.press("中文" if locale == "zh" else "English")
    await wait_button(user, label(locale, "reg.consent_yes"))
    await user.press(label(locale, "reg.consent_yes"))
    await wait_button(user, label(locale, "reg.marketing_no"))
    await user.press(label(locale, "reg.marketing_yes" if marketing else "reg.marketing_no"))
    keep = label(locale, "reg.name_keep", name=user.first_name)
    await wait_button(user, keep)
    if name is None:
        await user.press(keep)
    else:
        await user.send(name)
    await wait_button(user, label(locale, "reg.phone_button"))
    await user.press(label(locale, "reg.phone_button"))
    await wait_button(user, label(locale, "reg.birthday_skip"))
    if birthday is None:
        await user.press(label(locale, "reg.birthday_skip"))
    else:
        await user.send(birthday)
    await wait_button(user, label(locale, "buttons.done"))
    for key in interests:
        await user.press(label(locale, f"interest.{key}"))
        await wait_button(user, f"✓ {label(locale, f'interest.{key}')}")
    await user.press(label(locale, "buttons.done"))
    await user.wait_until(lambda m: m.photo is not None)


async def walk_to(user: SimUser, locale: str, step: str) -> None:
    """Go through registration up to (not into) ``step``: consent, marketing, name, phone,
    birthday or interests."""
    order = ["consent", "marketing", "name", "phone", "birthday", "interests"]
    await user.send("/start")
    await wait_button(user, "English")
    await user.press("中文" if locale == "zh" else "English")
    await wait_button(user, label(locale, "reg.consent_yes"))
    if order.index(step) <= 0:
        return
    await user.press(label(locale, "reg.consent_yes"))
    await wait_button(user, label(locale, "reg.marketing_no"))
    if order.index(step) <= 1:
        return
    await user.press(label(locale, "reg.marketing_no"))
    await user.expect(label(locale, "reg.name")[:8])
    if order.index(step) <= 2:
        return
    await user.send("Mei")
    await wait_button(user, label(locale, "reg.phone_button"))
    if order.index(step) <= 3:
        return
    await user.press(label(locale, "reg.phone_button"))
    await wait_button(user, label(locale, "reg.birthday_skip"))
    if order.index(step) <= 4:
        return
    await user.press(label(locale, "reg.birthday_skip"))
    await wait_button(user, label(locale, "buttons.done"))


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 5.0
) -> None:
    """Wait for a state the bot reaches without saying anything (e.g. after my_chat_member)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.01)


async def settled(app: RunningBot) -> None:
    """Wait until the bot finished every update it took, commits included.

    A reply reaches the chat before its update's unit of work commits; read the database after
    this, not right after the reply.
    """
    assert await app.dp["update_log"].wait_idle(5.0), "the bot is still busy after 5 s"


async def member_of(app: RunningBot, telegram_id: int) -> Member | None:
    await settled(app)
    async with app.session() as session:
        # Interests are loaded only where asked for (the bot's own reads skip them).
        return await session.scalar(
            select(Member)
            .where(Member.telegram_id == telegram_id)
            .options(selectinload(Member.interests))
        )
