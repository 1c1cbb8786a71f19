"""Router assembly helpers: synchronous filters run in line, not on a worker thread.

aiogram 3 (since 3.2x) runs every filter that is not a coroutine — ``F.text == ...`` magic
filters, FSM ``State`` objects used as filters, plain predicate functions — through
``asyncio.to_thread``: one thread-pool hand-off, and a wake-up of the event loop, per filter
per update. A shopper's ``/points`` passed about fourteen of them before its handler. Our
synchronous filters are predicates over the update that take microseconds and never block, so
``inline_sync_filters`` makes each one a coroutine that calls it directly; the thread pool is
then left to the work that needs it (charts, template rendering). Hand-written because aiogram
has no switch for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.handler import FilterObject, HandlerObject


def _filters(router: Router) -> Iterator[FilterObject]:
    for observer in router.observers.values():
        handlers: list[HandlerObject] = list(getattr(observer, "handlers", []))
        root = getattr(observer, "_handler", None)  # the router-level filters
        if isinstance(root, HandlerObject):
            handlers.append(root)
        for handler in handlers:
            yield from handler.filters or ()
    for sub_router in router.sub_routers:
        yield from _filters(sub_router)


def _in_line(check: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(check)
    async def run(*args: Any, **kwargs: Any) -> Any:
        return check(*args, **kwargs)

    return run


def inline_sync_filters(routers: Iterable[Router]) -> int:
    """Make every synchronous filter in ``routers`` (and below) run in line; how many were."""
    count = 0
    for router in routers:
        for event_filter in _filters(router):
            if not event_filter.awaitable:
                # ``params`` (which keyword arguments the filter takes) stays as computed.
                event_filter.callback = _in_line(event_filter.callback)
                event_filter.awaitable = True
                count += 1
    return count
