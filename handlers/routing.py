"""Router assembly helpers: synchronous filters run in line, not on a worker thread.

aiogram 3 (since 3.2x) runs every filter that is not a coroutine — ``F.text == ...`` magic
filters, FSM ``State`` objects used as filters, plain predicate functions — through
``asyncio.to_thread``: one thread-pool hand-off, and a wake-up of the event loop, per filter
per update. A shopper's ``/points`` passed about fourteen of them before its handler. Our
synchronous filters are predicates over the update that take microseconds and never block, so
``inline_sync_filters`` makes each one a coroutine that calls it directly; the thread pool is
then left to the work that needs it (charts, template rendering). Hand-written because aiogram
has no switch for it.

``lean_routing`` trims aiogram's bookkeeping on the way to a handler, which a profile showed
costing more than the handler itself: /points passes about 12 routers and 44 filters, and
aiogram copies the whole keyword data (some 30 entries) several times for each, wraps each
router's step in ``functools.wraps`` and a ``partial`` even when that router has no outer
middleware, and builds a ``partial`` per filter call. The lean versions do the same checks in
the same order with the same results, without the copies.

``Command`` filters are gated: a command is parsed and validated by aiogram (prefix, mention,
the bot's username, magic) only when the message's first word can name one of the filter's
commands; /points met some ten ``Command`` filters on its way, each splitting and checking the
text in full only to say no. The gate says no only where aiogram would, so the same handler
answers. Filters inside ``or_f``/``and_f``/``~`` are made in line and gated like the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial, wraps
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.bases import UNHANDLED, SkipHandler
from aiogram.dispatcher.event.handler import FilterObject, HandlerObject
from aiogram.dispatcher.event.telegram import TelegramEventObserver
from aiogram.filters import Command
from aiogram.filters.logic import _AndFilter, _InvertFilter, _OrFilter
from aiogram.types import TelegramObject

from handlers.refusals import CommandGate, Refusal, handler_refusal


def _filters(router: Router) -> Iterator[FilterObject]:
    """Every filter object of ``router`` and below, those inside logic filters included."""
    for observer in router.observers.values():
        handlers: list[HandlerObject] = list(getattr(observer, "handlers", []))
        root = getattr(observer, "_handler", None)  # the router-level filters
        if isinstance(root, HandlerObject):
            handlers.append(root)
        for handler in handlers:
            for event_filter in handler.filters or ():
                yield from _with_nested(event_filter)
    for sub_router in router.sub_routers:
        yield from _filters(sub_router)


def _with_nested(event_filter: FilterObject) -> Iterator[FilterObject]:
    yield event_filter
    logic = event_filter.callback
    if isinstance(logic, _InvertFilter):
        yield from _with_nested(logic.target)
    elif isinstance(logic, _AndFilter | _OrFilter):
        for target in logic.targets:
            yield from _with_nested(target)


def _in_line(check: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(check)
    async def run(*args: Any, **kwargs: Any) -> Any:
        return check(*args, **kwargs)

    return run


def inline_sync_filters(routers: Iterable[Router]) -> int:
    """Make every synchronous filter in ``routers`` (and below) run in line, and gate every
    ``Command`` filter; how many were made in line."""
    count = 0
    for router in routers:
        for event_filter in _filters(router):
            command = event_filter.callback
            if isinstance(command, Command):
                gate = CommandGate.of(command)
                if gate is not None:
                    event_filter.callback = gate  # same parameters: message, bot
            elif not event_filter.awaitable:
                # ``params`` (which keyword arguments the filter takes) stays as computed.
                event_filter.callback = _in_line(event_filter.callback)
                event_filter.awaitable = True
                count += 1
    return count


def _lean_check(handler: HandlerObject) -> Callable[..., Any]:
    """``HandlerObject.check`` without a copy of the data and a ``partial`` per filter."""
    filters = tuple(handler.filters or ())
    original = handler.check

    async def check(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
        for event_filter in filters:
            if not event_filter.awaitable:  # not made in line: aiogram's own way
                return await original(*args, **kwargs)
        for event_filter in filters:
            if event_filter.varkw:
                result = await event_filter.callback(*args, **kwargs)
            else:
                params = event_filter.params
                result = await event_filter.callback(
                    *args, **{key: kwargs[key] for key in params if key in kwargs}
                )
            if not result:
                return False, kwargs
            if isinstance(result, dict):
                kwargs.update(result)
        return True, kwargs

    return check


def _lean_trigger(observer: TelegramEventObserver) -> Callable[..., Any]:
    """``TelegramEventObserver.trigger`` that passes over a handler that refuses the event
    (``handlers/refusals.py``) without calling its filters; otherwise aiogram's own steps."""
    plan = [(handler, handler_refusal(handler)) for handler in observer.handlers]

    async def trigger(event: TelegramObject, **kwargs: Any) -> Any:
        for handler, refuses in plan:
            if refuses is not None and refuses(event, kwargs):
                continue
            kwargs["handler"] = handler
            result, data = await handler.check(event, **kwargs)
            if result:
                kwargs.update(data)
                try:
                    wrapped_inner = _chain(observer._resolve_middlewares(), handler.call)
                    return await wrapped_inner(event, kwargs)
                except SkipHandler:
                    continue
        return UNHANDLED

    return trigger


def _subtree_refusals(router: Router, update_type: str) -> list[Refusal] | None:
    """One refusal per handler of ``update_type`` in ``router`` and below, if every handler
    has one and no router there has an outer middleware for it (which would see the event
    even when no handler takes it); else None."""
    refusals: list[Refusal] = []
    for member in _routers(router):
        observer = member.observers.get(update_type)
        if observer is None:
            continue
        if len(observer.outer_middleware):
            return None
        for handler in observer.handlers:
            refusal = handler_refusal(handler)
            if refusal is None:
                return None
            refusals.append(refusal)
    return refusals


def _lean_propagate(router: Router) -> Callable[..., Any]:
    """``Router.propagate_event`` that passes over the router when every handler in it and
    below refuses the event, and chains its outer middlewares (if any) without aiogram's
    per-call wrapper."""
    skippable = {name: _subtree_refusals(router, name) for name in router.observers}

    async def propagate_event(update_type: str, event: TelegramObject, **kwargs: Any) -> Any:
        refusals = skippable.get(update_type)
        if refusals is not None and all(refuses(event, kwargs) for refuses in refusals):
            return UNHANDLED
        observer = router.observers.get(update_type)
        kwargs["event_router"] = router
        if observer is not None and len(observer.outer_middleware):

            async def inner(event: TelegramObject, **data: Any) -> Any:
                return await router._propagate_event(
                    observer=observer, update_type=update_type, event=event, **data
                )

            return await _chain(observer.outer_middleware, inner)(event, kwargs)
        return await router._propagate_event(
            observer=observer, update_type=update_type, event=event, **kwargs
        )

    return propagate_event


def _chain(middlewares: Sequence[Any], call: Callable[..., Any]) -> Callable[..., Any]:
    """``MiddlewareManager.wrap_middlewares`` without its ``functools.wraps`` per call: each
    middleware gets the next as ``handler``, the last calls ``call(event, **data)``."""

    def last(event: TelegramObject, data: dict[str, Any]) -> Any:
        return call(event, **data)

    wrapped: Callable[..., Any] = last
    for middleware in reversed(middlewares):
        wrapped = partial(middleware, wrapped)
    return wrapped


def _routers(router: Router) -> Iterator[Router]:
    yield router
    for sub_router in router.sub_routers:
        yield from _routers(sub_router)


def lean_routing(routers: Iterable[Router]) -> None:
    """Give every router in ``routers`` (and below) and each of its handlers (and router-level
    filters) the lean ways above; call after ``inline_sync_filters``."""
    for top in routers:
        for router in _routers(top):
            router.propagate_event = _lean_propagate(router)  # type: ignore[method-assign]
            for observer in router.observers.values():
                observer.trigger = _lean_trigger(observer)  # type: ignore[method-assign]
                handlers: list[HandlerObject] = list(getattr(observer, "handlers", []))
                root = getattr(observer, "_handler", None)
                if isinstance(root, HandlerObject):
                    handlers.append(root)
                for handler in handlers:
                    if handler.filters:
                        handler.check = _lean_check(handler)  # type: ignore[method-assign]
