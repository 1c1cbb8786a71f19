"""The event loop the long-running commands run on: uvloop where it is installed.

uvloop (libuv under asyncio's API) spends less CPU per wake-up, socket read and thread hand-off
than asyncio's own loop, and every update makes several of each (the webhook request or the
polling answer, the database's round trips or aiosqlite's thread, the reply to the Bot API).
Windows has no uvloop; there, and wherever it is missing, asyncio's loop runs the same code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when uvloop is installed, else None (asyncio's default)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on uvloop when it is installed."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
