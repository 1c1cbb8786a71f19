"""What shoppers do in their private chat with the bot."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType

from handlers.shopper import start


def build_router() -> Router:
    router = Router(name="shopper")
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.include_routers(start.build_router())
    return router
