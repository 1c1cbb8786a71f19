"""Process-level middlewares: update logging and tracking of updates still being handled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from aiogram.types.update import UpdateTypeLookupError

log = logging.getLogger("carebot.updates")


def update_type(update: Update) -> str:
    """The update's kind for a log line; ``unknown`` for a kind newer than our aiogram.

    ``Update.event_type`` raises for such an update; a log line must not fail because of it
    (the dispatcher itself skips the update with a warning).
    """
    try:
        return update.event_type
    except UpdateTypeLookupError:
        return "unknown"


class UpdateLogMiddleware(BaseMiddleware):
    """One line per update at DEBUG; the in-flight count lets shutdown finish what it started."""

    def __init__(self) -> None:
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if isinstance(event, Update) and log.isEnabledFor(logging.DEBUG):
            user = data.get("event_from_user")
            log.debug(
                "update %s %s from %s",
                event.update_id,
                update_type(event),
                user.id if user else "-",
            )
        self.in_flight += 1
        self._idle.clear()
        try:
            return await handler(event, data)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no update is being handled; False if ``timeout`` ran out first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
