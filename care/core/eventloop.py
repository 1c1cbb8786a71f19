"""The event loop the long-running processes run on: uvloop where it is installed.

uvloop (libuv under asyncio's API) spends less CPU per wake-up, socket read and thread hand-off
than asyncio's own loop, and every update and every delivered message makes several of each (the
webhook request or the polling answer, the database's round trips or aiosqlite's thread, the
request to the Bot API). ``carebot run``, ``carebot deliver`` and ``python -m
care.messaging.delivery`` choose their loop here. Where uvloop is missing (Windows) asyncio's
loop runs the same code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop event loop when uvloop is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on ``new_event_loop()``."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
