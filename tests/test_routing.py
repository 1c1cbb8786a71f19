"""The lean routing changes how fast a handler is found, never which one."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram import F, Router
from aiogram.filters import Command, CommandStart, StateFilter, or_f
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Chat, Message, User
from hypothesis import given, settings
from hypothesis import strategies as st

from care.core.i18n import catalogue
from handlers import build_routers
from handlers.refusals import CommandGate, _filter_refusal, handler_refusal
from handlers.routing import _filters, inline_sync_filters
from handlers.routing import _routers as _router_tree

BOT_NAME = "carebot_test_bot"


class FakeBot:
    """What ``Command`` asks of the bot: its username, for "/points@name"."""

    async def me(self) -> User:
        return User(id=1, is_bot=True, first_name="Bot", username=BOT_NAME)


def message(text: str | None, caption: str | None = None) -> Message:
    return Message(
        message_id=1,
        date=datetime(2026, 11, 30, tzinfo=UTC),
        chat=Chat(id=5, type="private"),
        from_user=User(id=5, is_bot=False, first_name="Li"),
        text=text,
        caption=caption,
    )


FILTERS = [
    Command("points"),
    Command("card", "offers", "points"),
    Command("Points", ignore_case=True),
    Command("points", prefix="/!"),
    Command("points", ignore_mention=True),
    Command("points", magic=F.args),
    CommandStart(),
    CommandStart(deep_link=True),
]
WORDS = ["/points", "/POINTS", "/Points", "!points", "/card", "/start", "/start abc", "/pointsx"]
MENTIONS = ["", "@" + BOT_NAME, "@CAREBOT_TEST_BOT", "@other_bot", "@"]
texts = st.one_of(
    st.text(max_size=30),
    st.builds(
        lambda space, word, mention, rest: space + word + mention + rest,
        st.sampled_from(["", " ", "\n", "\u3000"]),
        st.sampled_from(WORDS),
        st.sampled_from(MENTIONS),
        st.sampled_from(["", " ", " 12", "  a b", "\n", "x"]),
    ),
)


async def verdicts(text: str, in_caption: bool) -> list[tuple[Any, Any]]:
    event = message(None, text) if in_caption else message(text)
    pairs = []
    for command in FILTERS:
        gate = CommandGate.of(command)
        assert gate is not None
        pairs.append((await command(event, FakeBot()), await gate(event, FakeBot())))  # type: ignore[arg-type]
    return pairs


@settings(max_examples=400, deadline=None)
@given(text=texts, in_caption=st.booleans())
def test_the_command_gate_answers_as_aiogram_does(text: str, in_caption: bool) -> None:
    for full, gated in asyncio.run(verdicts(text, in_caption)):
        assert gated == full, text


def test_a_pattern_among_the_commands_is_not_gated() -> None:
    assert CommandGate.of(Command(re.compile(r"item_\d+"))) is None
    assert CommandGate.of(Command("a", re.compile(r"item_\d+"))) is None


async def test_filters_inside_logic_filters_run_in_line() -> None:
    """A synchronous filter inside ``or_f``/``~`` is called in line, not on a worker thread."""
    router = Router()
    router.message.register(lambda m: None, or_f(Command("x"), F.text == "a"), ~(F.text == "b"))
    inline_sync_filters([router])
    assert all(event_filter.awaitable for event_filter in _filters(router))


def test_every_filter_of_the_bot_runs_in_line() -> None:
    assert all(
        event_filter.awaitable for router in build_routers() for event_filter in _filters(router)
    )


def all_states() -> list[str | None]:
    """Every FSM state the bot's flows define, and no state."""
    found: list[str | None] = [None]
    pending = list(StatesGroup.__subclasses__())
    while pending:
        group = pending.pop()
        if group.__module__.startswith("handlers."):
            found.extend(group.__all_states_names__)
        pending.extend(group.__subclasses__())
    assert len(found) > 20, found
    return found


def bot_events() -> list[Message | CallbackQuery]:
    """Messages a shopper or staff member sends (every command and menu label in every
    language, words, captions, media without text) and button presses."""
    commands = {
        name
        for router in build_routers()
        for event_filter in _filters(router)
        if isinstance(event_filter.callback, CommandGate)
        for name in event_filter.callback.names
    }
    words = [f"/{name}" for name in commands] + [f"/{name}@{BOT_NAME} 5" for name in commands]
    words += [  # every text short enough to be a button's label, in both languages
        text
        for locale in ("zh", "en")
        for text in catalogue(locale).values()
        if len(text) <= 24 and "{" not in text
    ]
    words += ["hi", "你们周日营业吗？", "/unknown", "/", " ", "12", "2026-12-01"]
    events: list[Message | CallbackQuery] = [message(word) for word in words]
    events += [message(None, caption) for caption in ("/points", "photo", None)]
    presses = ["rw:yes:1:30", "fb:kind:complaint", "st:offers", "x", ""]
    events += [
        CallbackQuery(
            id="1",
            from_user=User(id=5, is_bot=False, first_name="Li"),
            chat_instance="c",
            data=data,
        )
        for data in presses
    ]
    return events


async def test_a_refusal_is_only_ever_said_where_the_filter_says_no() -> None:
    """Each filter of the bot that gives a refusal, over every state and many events: where
    the refusal says no, the filter (aiogram's own check) says no too."""
    routers = build_routers()
    checked = refused = 0
    states = all_states()
    events = bot_events()
    distinct = {id(f.callback): f for router in routers for f in _filters(router)}
    for event_filter in distinct.values():
        refusal = _filter_refusal(event_filter)
        if refusal is None:
            continue
        # Every state with a few events, and every event in no state and in a flow's state.
        pairs = [(state, event) for state in states for event in events[:: len(events) // 5]]
        pairs += [(state, event) for state in (None, states[-1]) for event in events]
        for state, event in pairs:
            data = {"raw_state": state, "bot": FakeBot()}
            if refusal(event, data):
                refused += 1
                assert not await event_filter.call(event, **data), (event_filter, state, event)
        checked += 1
    assert checked > 40 and refused > 10_000, (checked, refused)


def test_points_passes_by_the_handlers_that_cannot_take_it() -> None:
    """Most handlers refuse a shopper's /points with no state at a glance; its own does not."""
    refusing, taking = 0, []
    event = message("/points")
    for router in build_routers():
        for observer_router in _router_tree(router):
            for handler in observer_router.message.handlers:
                refusal = handler_refusal(handler)
                if refusal is not None and refusal(event, {"raw_state": None}):
                    refusing += 1
                else:
                    taking.append(handler.callback.__name__)
    assert refusing >= 30, refusing
    assert "cmd_points" in taking


class Flow(StatesGroup):
    step = State()
    other = State()


@pytest.mark.parametrize(
    ("filters", "text", "state", "refused"),
    [
        ((F.text == "Points",), "Points", None, False),
        ((F.text == "Points",), "Card", None, True),
        ((F.text.in_({"积分", "Points"}),), "积分", None, False),
        ((F.text.in_({"积分", "Points"}),), None, None, True),
        ((Flow.step,), "hi", "Flow:step", False),
        ((Flow.step,), "hi", None, True),
        ((StateFilter(Flow),), "hi", "Flow:other", False),
        ((StateFilter(Flow),), "hi", "Other:step", True),
        ((StateFilter(None),), "hi", None, False),
        ((StateFilter("*"),), "hi", "Flow:step", None),  # any state: no refusal
        ((Flow.step, F.text == "a"), "b", "Flow:step", True),
        ((or_f(Command("a"), F.text == "b"),), "b", None, False),
        ((or_f(Command("a"), F.text == "b"),), "c", None, True),
        ((or_f(Command("a"), F.text.startswith("b")),), "c", None, None),  # unknown shape
        ((F.text.len() == 2,), "ab", None, None),
    ],
)
def test_refusals_of_each_shape(
    filters: tuple[Any, ...], text: str | None, state: str | None, refused: bool | None
) -> None:
    router = Router()
    router.message.register(lambda m: None, *filters)
    inline_sync_filters([router])
    refusal = handler_refusal(router.message.handlers[0])
    if refused is None:
        assert refusal is None
        return
    assert refusal is not None
    event = message(text)
    assert refusal(event, {"raw_state": state}) is refused
    verdict = asyncio.run(router.message.handlers[0].check(event, raw_state=state, bot=FakeBot()))
    assert verdict[0] is not refused
