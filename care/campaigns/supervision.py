"""Supervising running campaigns: a background task per launch that shows live progress.

The chat UI starts one watcher when staff press "send": the watcher runs the launch, then
polls the campaign's numbers and hands each changed progress text to a ``ProgressView`` (the
UI edits its progress message with it) until the final report. Nothing here knows Telegram:
the view is any coroutine that shows a text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.campaigns.launch import launch_campaign
from care.campaigns.report import campaign_report, finish_if_delivered, progress_text
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import translator

log = logging.getLogger(__name__)

ProgressView = Callable[[str], Awaitable[None]]


class CampaignWatchers:
    """Background tasks that launch a campaign and keep its progress view current.

    One per dispatcher (created at start-up, cancelled at shutdown). Each task lives at most
    ``lifetime`` seconds; the scheduler's ``launch_due_campaigns`` finishes anything a task
    left behind (a restart), so the final report never depends on a task surviving.
    """

    def __init__(self, interval: float = 3.0, lifetime: float = 6 * 3600.0) -> None:
        self.interval = interval
        self.lifetime = lifetime
        self._tasks: set[asyncio.Task[None]] = set()

    def start(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        config: CareConfig,
        clock: Clock,
        *,
        campaign_id: int,
        locale: str,
        show: ProgressView,
    ) -> None:
        task = asyncio.create_task(
            self._watch(session_factory, config, clock, campaign_id, locale, show),
            name=f"campaign-{campaign_id}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        config: CareConfig,
        clock: Clock,
        campaign_id: int,
        locale: str,
        show: ProgressView,
    ) -> None:
        t = translator(locale)
        launching: asyncio.Task[Any] | None = asyncio.create_task(
            launch_campaign(session_factory, config, clock, campaign_id)
        )
        deadline = time.monotonic() + self.lifetime
        shown = ""
        try:
            while True:
                if launching is not None:
                    await asyncio.wait({launching}, timeout=self.interval)
                    if launching.done():
                        if launching.exception() is not None:
                            # The scheduler's next tick resumes a launch that stopped half-way.
                            log.error(
                                "launch of campaign %s failed",
                                campaign_id,
                                exc_info=launching.exception(),
                            )
                        launching = None
                else:
                    await asyncio.sleep(self.interval)
                async with session_factory() as session:
                    finished = await finish_if_delivered(session, config, clock, campaign_id)
                    await session.commit()
                    report = finished or await campaign_report(session, campaign_id)
                if report is None:
                    return
                text = progress_text(t, report)
                if text != shown:
                    shown = text
                    await show(text)
                if report.done or time.monotonic() > deadline:
                    return
        except Exception:
            log.exception("progress of campaign %s stopped", campaign_id)

    async def wait_idle(self) -> None:
        """Wait for every running task (tests, and a graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
