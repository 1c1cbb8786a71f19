"""The schedule: the periodic work of the care engine, inside the bot process.

APScheduler 3 (``AsyncIOScheduler``, in-memory job store) fires the jobs; our own tables hold the
truth about what was done, so a restart or a missed run never repeats or loses work:

* **rules** (every minute) — one evaluation pass (``care.automation.engine.evaluate``).
  Every rule asks "due at or before now and not yet decided", so a pass after downtime catches
  up once, and the unique (rule, member, occasion) touch keeps a second pass from deciding
  anything twice.
* **segments** (hourly) — ``care.segments.refresh.refresh_segments``; lifecycle stages feed
  the rules. The same job refits the customer-value model (``care.value.refresh``) once its
  last fit is ``value_every`` old (daily: P(alive) and expected purchases move by the day).
* **campaigns** (every 30 s) — due staff broadcasts
  (``care.campaigns.campaigns.launch_due_campaigns``).
* **delivery** — the outbox drain (``care.messaging.delivery.DeliveryWorker.run``) as a
  long-running task.

With several replicas exactly one leads: it holds a lease row in ``job_state``, renewed on every
tick, taken over by another replica only after it has expired (a conditional UPDATE, the same
on SQLite and PostgreSQL). Only the leader evaluates rules, refreshes segments and launches
campaigns; every replica drains the outbox (claims there are row-level, never double-sent).
``job_state.covered_until`` records how far each job got, ``last_run_at`` when it last ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import Bot
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.automation.engine import RuleOutcome, evaluate
from care.campaigns.campaigns import launch_due_campaigns
from care.core.clock import Clock
from care.core.config import CareConfig
from care.messaging.delivery import DeliveryWorker
from care.segments.refresh import refresh_segments
from care.value.refresh import refresh_value
from storage.models import JobState

log = logging.getLogger(__name__)

LEADER = "care.leader"
RULES_JOB = "care.rules"
SEGMENTS_JOB = "care.segments"
VALUE_JOB = "care.value"
CAMPAIGNS_JOB = "care.campaigns"
STOP_TIMEOUT = 30.0


def default_holder() -> str:
    """A name for this process that differs between replicas and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"[:64]


async def _ensure_row(session: AsyncSession, name: str) -> None:
    if await session.get(JobState, name) is not None:
        return
    try:
        async with session.begin_nested():
            session.add(JobState(name=name))
    except IntegrityError:  # another replica created it a moment ago
        pass


async def acquire_lease(
    session_factory: async_sessionmaker[AsyncSession],
    holder: str,
    now: datetime,
    ttl: timedelta,
    name: str = LEADER,
) -> bool:
    """Take or renew the lease ``name`` for ``holder`` until ``now + ttl``; True if held.

    One conditional UPDATE decides: the lease is free (expired or never taken) or already ours.
    Two replicas racing for a free lease both run it; the database serialises them and the
    second one's condition no longer holds.
    """
    async with session_factory() as session:
        await _ensure_row(session, name)
        result = await session.execute(
            update(JobState)
            .where(
                JobState.name == name,
                or_(
                    JobState.lease_until.is_(None),
                    JobState.lease_until < now,
                    JobState.lease_holder == holder,
                ),
            )
            .values(lease_holder=holder, lease_until=now + ttl)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        return bool(getattr(result, "rowcount", 0) == 1)


async def release_lease(
    session_factory: async_sessionmaker[AsyncSession], holder: str, name: str = LEADER
) -> None:
    """Give the lease up at shutdown, so another replica takes over at once."""
    async with session_factory() as session:
        await session.execute(
            update(JobState)
            .where(JobState.name == name, JobState.lease_holder == holder)
            .values(lease_until=None, lease_holder=None)
            .execution_options(synchronize_session=False)
        )
        await session.commit()


async def job_state(
    session_factory: async_sessionmaker[AsyncSession], name: str
) -> JobState | None:
    async with session_factory() as session:
        return await session.scalar(select(JobState).where(JobState.name == name))


async def mark_covered(
    session_factory: async_sessionmaker[AsyncSession], name: str, until: datetime
) -> None:
    """Record that job ``name`` has done its work up to ``until``."""
    async with session_factory() as session:
        await _ensure_row(session, name)
        await session.execute(
            update(JobState)
            .where(JobState.name == name)
            .values(covered_until=until, last_run_at=until)
            .execution_options(synchronize_session=False)
        )
        await session.commit()


class CareScheduler:
    """Runs the care engine's periodic jobs and the delivery worker for one bot process."""

    def __init__(
        self,
        bot: Bot,
        session_factory: async_sessionmaker[AsyncSession],
        config: CareConfig,
        clock: Clock,
        *,
        holder: str | None = None,
        rules_every: timedelta = timedelta(minutes=1),
        segments_every: timedelta = timedelta(hours=1),
        value_every: timedelta = timedelta(days=1),
        campaigns_every: timedelta = timedelta(seconds=30),
        lease_ttl: timedelta = timedelta(minutes=3),
        deliver: bool = True,
    ) -> None:
        self.bot = bot
        self.session_factory = session_factory
        self.config = config
        self.clock = clock
        self.holder = holder or default_holder()
        self.rules_every = rules_every
        self.segments_every = segments_every
        self.value_every = value_every
        self.campaigns_every = campaigns_every
        self.lease_ttl = lease_ttl
        self.deliver = deliver
        self.worker: DeliveryWorker | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._stop = asyncio.Event()
        self._worker_task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the jobs (the first rules pass runs at once) and the delivery worker."""
        if self._scheduler is not None:
            return
        self._stop.clear()
        if self.deliver:
            self.worker = DeliveryWorker(self.bot, self.session_factory, self.config, self.clock)
            self._worker_task = asyncio.create_task(self.worker.run(self._stop))
        scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        )
        now = datetime.now(UTC)
        jobs: list[tuple[str, Callable[[], Awaitable[Any]], timedelta, datetime]] = [
            (RULES_JOB, self.run_rules, self.rules_every, now + timedelta(seconds=2)),
            (SEGMENTS_JOB, self.run_segments, self.segments_every, now + timedelta(seconds=1)),
            (CAMPAIGNS_JOB, self.run_campaigns, self.campaigns_every, now + timedelta(seconds=5)),
        ]
        for name, job, every, first in jobs:
            scheduler.add_job(
                self._tracked,
                "interval",
                args=[job],
                id=name,
                name=name,
                seconds=every.total_seconds(),
                next_run_time=first,
            )
        scheduler.start()
        self._scheduler = scheduler
        log.info("care scheduler started as %s", self.holder)

    async def stop(self) -> None:
        """Stop firing, let running jobs finish, stop the worker, and hand the lease over."""
        if self._scheduler is None:
            return
        self._scheduler.shutdown(wait=False)
        self._scheduler = None
        self._stop.set()
        pending = [task for task in self._running if not task.done()]
        if self._worker_task is not None:
            pending.append(self._worker_task)
        if pending:
            _done, late = await asyncio.wait(pending, timeout=STOP_TIMEOUT)
            for task in late:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*late, return_exceptions=True)
        self._worker_task = None
        with contextlib.suppress(Exception):
            await release_lease(self.session_factory, self.holder)
        log.info("care scheduler stopped")

    async def _tracked(self, job: Callable[[], Awaitable[Any]]) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await job()
        except Exception:  # a failed tick is logged and retried at the next one
            log.exception("scheduled job %s failed", getattr(job, "__name__", job))
        finally:
            if task is not None:
                self._running.discard(task)

    # ------------------------------------------------------------------ the jobs
    async def is_leader(self) -> bool:
        """Take or renew the leader lease; only the leader runs the jobs below."""
        return await acquire_lease(
            self.session_factory, self.holder, self.clock.now(), self.lease_ttl
        )

    async def run_rules(self) -> list[RuleOutcome] | None:
        """One evaluation pass if this replica leads; None if another one does."""
        async with self._lock:
            if not await self.is_leader():
                return None
            now = self.clock.now()
            state = await job_state(self.session_factory, RULES_JOB)
            if state is not None and state.covered_until is not None:
                gap = now - state.covered_until
                if gap > 3 * self.rules_every:
                    log.info("care rules catching up %s since the last pass", gap)
            outcomes = await evaluate(self.session_factory, self.config, self.clock)
            await mark_covered(self.session_factory, RULES_JOB, now)
            if self.worker is not None and any(o.sent for o in outcomes):
                self.worker.notify()
            return outcomes

    async def run_segments(self) -> bool:
        """Refresh segments if this replica leads and the last refresh is an interval old."""
        if not await self.is_leader():
            return False
        now = self.clock.now()
        state = await job_state(self.session_factory, SEGMENTS_JOB)
        last = state.covered_until if state is not None else None
        if last is not None and now - last < self.segments_every - timedelta(seconds=5):
            return False
        stats = await refresh_segments(self.session_factory, self.config, self.clock)
        await mark_covered(self.session_factory, SEGMENTS_JOB, now)
        log.info("segments refreshed: %s", stats)
        await self.run_value(now)
        return True

    async def run_value(self, now: datetime) -> bool:
        """Refit the customer-value model if its last fit is ``value_every`` old."""
        state = await job_state(self.session_factory, VALUE_JOB)
        last = state.covered_until if state is not None else None
        if last is not None and now - last < self.value_every - timedelta(seconds=5):
            return False
        value = await refresh_value(self.session_factory, self.clock)
        await mark_covered(self.session_factory, VALUE_JOB, now)
        log.info("customer value refreshed: %s", value)
        return True

    async def run_campaigns(self) -> int:
        """Launch due staff broadcasts if this replica leads."""
        if not await self.is_leader():
            return 0
        launched = await launch_due_campaigns(self.session_factory, self.config, self.clock)
        await mark_covered(self.session_factory, CAMPAIGNS_JOB, self.clock.now())
        if launched and self.worker is not None:
            self.worker.notify()
        return int(launched)
