"""What start-up checks without Telegram: the one-line ``StartupError`` and the database probe.

Kept apart from bot/app.py so the commands that never talk to Telegram (``migrate``, ``import``,
``care``) do not import aiogram and start in a fraction of a second.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine


class StartupError(Exception):
    """The bot cannot start; the message says why in one line."""


async def check_database(engine: AsyncEngine) -> None:
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (OSError, DBAPIError, OperationalError) as exc:
        reason = getattr(exc, "orig", None) or exc
        raise StartupError(
            f"cannot reach the database at {engine.url.render_as_string(hide_password=True)}: "
            f"{reason}"
        ) from None
