"""What a handler is sure to refuse, known without calling its filters.

aiogram finds the handler of an update by calling, router after router, each handler's filters
in turn until one handler passes. A shopper's ``/points`` met 39 handlers in 12 routers that way,
most of them steps of a flow the shopper is not in or commands it does not name, and the search
cost more CPU than answering. A *refusal* is a plain synchronous test, read off a handler's
filters when the routers are assembled, that is true only where one of those filters would say
no: the FSM state is not among a state filter's states, the first word is not among a command
filter's commands, the text is not a magic filter's ``F.text == …`` or ``F.text.in_(…)``.
A filter of any other kind gives no refusal, and a handler without one is checked as aiogram
checks it. ``handlers/routing.py`` skips a handler that refuses, and a whole router when every
handler in it and below it refuses; that router's own filters then go unasked, which changes
nothing because filters only look (they never write or send).

Hand-written because aiogram has no index of its handlers. It reads the public attributes of
aiogram's filters and the operations of a magic filter; a shape it does not know exactly gives
no refusal, so a change in those libraries can cost speed, never a wrong handler.
``tests/test_routing.py`` checks every refusal against its filter on every handler of the bot.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from inspect import isclass
from typing import Any

from aiogram.dispatcher.event.handler import FilterObject, HandlerObject
from aiogram.filters import Command, StateFilter
from aiogram.filters.logic import _AndFilter, _OrFilter
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message, TelegramObject
from magic_filter import MagicFilter
from magic_filter.operations import ComparatorOperation, FunctionOperation, GetAttributeOperation
from magic_filter.util import in_op

# (event, the update's data) -> True: the filter (or handler) says no to this event.
Refusal = Callable[[TelegramObject, dict[str, Any]], bool]


_last_word: tuple[object, str | None] = (None, None)


def first_word(event: TelegramObject) -> str | None:
    """The first word of a message's text (or caption), as ``Command`` splits it; None for no
    text. Kept for the last event asked about: the routers ask once per command filter, one
    after the other, of the same update."""
    global _last_word
    if _last_word[0] is event:
        return _last_word[1]
    text = (event.text or event.caption) if isinstance(event, Message) else None
    words = text.split(maxsplit=1) if text else None
    word = words[0] if words else None
    _last_word = (event, word)
    return word


class CommandGate:
    """A ``Command`` filter that says no at once when the message's first word names none of
    its commands, and otherwise lets aiogram parse and validate it in full (prefix, mention of
    the bot's username, magic). Stands in for the ``Command`` in its ``FilterObject``, whose
    parameters (``message``, ``bot``) stay as aiogram computed them."""

    def __init__(self, command: Command, names: frozenset[str]) -> None:
        self.command = command
        self.names = names  # casefolded already when ``ignore_case``

    @classmethod
    def of(cls, command: Command) -> CommandGate | None:
        """The gate of ``command``; None when a regular expression is among its commands (it
        may match any word)."""
        names = frozenset(name for name in command.commands if isinstance(name, str))
        return cls(command, names) if len(names) == len(set(command.commands)) else None

    def refuses(self, event: TelegramObject, _data: dict[str, Any] | None = None) -> bool:
        word = first_word(event)
        if not word or word[0] not in self.command.prefix:
            return True
        name = word[1:].partition("@")[0]
        return (name.casefold() if self.command.ignore_case else name) not in self.names

    async def __call__(self, message: Message, bot: Any) -> Any:
        if self.refuses(message):
            return False
        return await self.command(message, bot)


def handler_refusal(handler: HandlerObject) -> Refusal | None:
    """True only where one of the handler's filters would say no; None if none can tell."""
    return _any_of(_filter_refusal(event_filter) for event_filter in handler.filters or ())


def _any_of(refusals: Iterable[Refusal | None]) -> Refusal | None:
    known = tuple(refusal for refusal in refusals if refusal is not None)
    if not known:
        return None
    if len(known) == 1:
        return known[0]
    return lambda event, data: any(refusal(event, data) for refusal in known)


def _filter_refusal(event_filter: FilterObject) -> Refusal | None:
    if event_filter.magic is not None:
        return _magic_refusal(event_filter.magic)
    check = getattr(event_filter.callback, "__wrapped__", event_filter.callback)  # in line
    if isinstance(check, CommandGate):
        return check.refuses
    if isinstance(check, StateFilter):
        return _state_refusal(check.states)
    if isinstance(check, State):
        return _state_refusal((check,))
    if isinstance(check, _AndFilter):  # all must pass: one that says no is enough
        return _any_of(_filter_refusal(target) for target in check.targets)
    if isinstance(check, _OrFilter):  # one must pass: no only when every one says no
        parts = [_filter_refusal(target) for target in check.targets]
        if not parts or any(part is None for part in parts):
            return None
        known = tuple(part for part in parts if part is not None)
        return lambda event, data: all(refusal(event, data) for refusal in known)
    return None


def _state_refusal(states: Sequence[Any]) -> Refusal | None:
    """``StateFilter(*states)`` (or one ``State``) refuses a raw state outside them."""
    accepted: set[str | None] = set()
    for state in states:
        if state is None or isinstance(state, str):
            accepted.add(state)
        elif isinstance(state, State):
            accepted.add(state.state)
        elif isinstance(state, StatesGroup):
            accepted.update(type(state).__all_states_names__)
        elif isclass(state) and issubclass(state, StatesGroup):
            accepted.update(state.__all_states_names__)
        else:
            return None
    if "*" in accepted:
        return None
    frozen = frozenset(accepted)
    return lambda _event, data: data.get("raw_state") not in frozen


def _magic_refusal(magic: MagicFilter) -> Refusal | None:
    """``F.<field> == "text"`` and ``F.<field>.in_(texts)``, exactly those shapes."""
    operations = getattr(magic, "_operations", None)
    if not isinstance(operations, tuple) or len(operations) != 2:
        return None
    field, test = operations
    if type(field) is not GetAttributeOperation:
        return None
    name = field.name
    if type(test) is ComparatorOperation and test.comparator is operator.eq:
        if not isinstance(test.right, str):
            return None
        right = test.right
        return lambda event, _data: getattr(event, name, None) != right
    if type(test) is FunctionOperation and test.function is in_op and not test.kwargs:
        if len(test.args) != 1 or not isinstance(test.args[0], set | frozenset | tuple | list):
            return None
        if not all(isinstance(text, str) for text in test.args[0]):
            return None
        allowed = frozenset(test.args[0])
        return lambda event, _data: getattr(event, name, None) not in allowed
    return None
