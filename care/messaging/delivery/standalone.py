"""A delivery worker as a process of its own: drained once, or until SIGINT/SIGTERM.

Shared by ``python -m care.messaging.delivery`` and ``carebot deliver``, which differ only in
where their settings come from.
"""

from __future__ import annotations

import asyncio
import gc
import signal

from care.messaging.delivery.worker import DeliveryWorker


async def serve(worker: DeliveryWorker, *, forever: bool) -> None:
    """Drain the outbox once (``forever`` False) or keep draining until the process is told to
    stop; a stop lets the batch in flight finish and puts the rest back in the queue."""
    # As in the bot process: keep start-up's long-lived objects out of full collections.
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if forever:
        await worker.run(stop)
    else:
        while await worker.drain_once(stop):
            pass
