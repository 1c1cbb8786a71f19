"""The chat UI: aiogram routers by audience, their keyboards and middlewares."""

from __future__ import annotations

from aiogram import Router

from handlers import fallback, shopper, staff


def build_routers() -> list[Router]:
    """Fresh routers for one dispatcher, in matching order: staff, shopper, then the fallback."""
    return [staff.build_router(), shopper.build_router(), fallback.build_router()]
