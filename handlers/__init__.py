"""The chat UI: aiogram routers by audience, their keyboards and middlewares."""

from __future__ import annotations

from aiogram import Router

from handlers import fallback, shopper, staff
from handlers.routing import inline_sync_filters, lean_routing


def build_routers() -> list[Router]:
    """Fresh routers for one dispatcher, in matching order: staff, shopper, then the fallback.

    Their synchronous filters run in line rather than on aiogram's worker thread, and the way
    to a handler skips aiogram's copies of the data (see handlers/routing.py).
    """
    routers = [staff.build_router(), shopper.build_router(), fallback.build_router()]
    inline_sync_filters(routers)
    lean_routing(routers)
    return routers
