"""Outer middlewares: one DB session per update, the member and their language, flood control."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.config import CareConfig
from care.i18n import normalize_locale, translator
from care.members import find_member

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
log = logging.getLogger(__name__)


class DbSessionMiddleware(BaseMiddleware):
    """Opens one session per update and commits once, after the handler succeeded."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self.session_factory() as session:
            data["session"] = session
            result = await handler(event, data)
            await session.commit()
            return result


class MemberContextMiddleware(BaseMiddleware):
    """Loads the member behind the update and picks the language to answer in."""

    def __init__(self, config: CareConfig) -> None:
        self.config = config

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        member = None
        if user is not None:
            member = await find_member(data["session"], user.id)
        data["member"] = member
        if member is not None:
            locale = member.locale
        else:
            locale = normalize_locale(
                user.language_code if user else None, self.config.default_locale
            )
        data["locale"] = locale
        data["t"] = translator(locale)
        return await handler(event, data)


class ThrottlingMiddleware(BaseMiddleware):
    """A token bucket per user: a flooding shopper is slowed down, everyone else is not.

    Kept in this process's memory, which is right for one polling process; with several
    replicas the per-user rate is per replica (Telegram's sticky delivery keeps a user's
    updates on one getUpdates consumer, and webhook replicas should share Redis isolation).
    """

    def __init__(self, rate: float = 3.0, burst: int = 6) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[int, tuple[float, float]] = {}
        self._warned: dict[int, float] = {}

    def _allow(self, user_id: int, now: float) -> bool:
        tokens, last = self._buckets.get(user_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[user_id] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > 100_000:
            self._buckets.clear()
        return allowed

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None:
            return await handler(event, data)
        now = time.monotonic()
        if self._allow(user.id, now):
            return await handler(event, data)
        log.info("throttled user %s", user.id)
        if now - self._warned.get(user.id, 0.0) > 10.0:
            self._warned[user.id] = now
            bot = data.get("bot")
            chat = data.get("event_chat")
            if bot is not None and chat is not None:
                t = data.get("t") or translator(normalize_locale(user.language_code))
                await bot.send_message(chat.id, t("common.too_fast"))
        return None
