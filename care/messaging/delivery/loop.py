"""The event loop a delivery process runs on: uvloop where it is installed.

At 1000 messages a second the worker's loop wakes, reads and writes sockets thousands of times
a second (each request and answer, each hand-off to aiosqlite's thread); uvloop spends less CPU
on each than asyncio's own loop. Where uvloop is missing (Windows) asyncio's loop runs the same
code. ``carebot deliver`` and ``carebot run`` choose their loop the same way (bot/).
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
