"""The event loop the delivery process runs on."""

from __future__ import annotations

import asyncio


def new_event_loop() -> asyncio.AbstractEventLoop:
    return asyncio.new_event_loop()
