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
  (``care.campaigns.launch.launch_due_campaigns``).
* **delivery** — the outbox drain (``care.messaging.delivery.DeliveryWorker.run``) as a
  long-running task.

With several replicas exactly one leads: it holds a lease row in ``job_state`` (``LEASE_TTL``,
15 s), renewed every ``RENEW_EVERY`` (5 s) and at the start of every job, taken over by another
replica only after it has expired (a conditional UPDATE, the same on SQLite and PostgreSQL). So
when a leader dies another one leads within ``LEASE_TTL + RENEW_EVERY`` (20 s).

No double runs: a leader that cannot renew (its database connection hangs, its process froze)
stops leading on its own before its lease can have expired (``STEP_DOWN_MARGIN`` early) and
cancels the jobs it is running; and a job records its progress (``covered_until``) only in a
transaction that checks the lease is still this replica's (the fencing check). Whatever a
cancelled job had committed is safe to meet again: rules decide each (rule, member, occasion)
once, campaigns launch once, segments are recomputed whole.

Only the leader evaluates rules, refreshes segments, launches campaigns and prunes old update
ids; every replica drains the outbox (claims there are row-level, never double-sent).
``job_state.covered_until`` records how far each job got, ``last_run_at`` when it last ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import Bot
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.automation.engine import RuleOutcome, evaluate
from care.campaigns.launch import launch_due_campaigns
from care.core import jobs
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.jobs import ensure_job_row
from care.core.metrics import LEADER as LEADER_GAUGE
from care.core.metrics import SCHEDULER_RUNS, SCHEDULER_SECONDS
from care.core.updates import prune_handled
from care.messaging.delivery import DeliveryWorker
from care.messaging.ratelimit import SendLimiter
from care.segments.refresh import refresh_segments
from storage.models import JobState

log = logging.getLogger(__name__)

LEADER = "care.leader"
RULES_JOB = "care.rules"
SEGMENTS_JOB = "care.segments"
VALUE_JOB = "care.value"
CAMPAIGNS_JOB = "care.campaigns"
HOUSEKEEPING_JOB = "care.housekeeping"
RENEW_JOB = "care.leader.renew"
STOP_TIMEOUT = 30.0
LEASE_TTL = timedelta(seconds=15)
RENEW_EVERY = timedelta(seconds=5)
# A leader that could not renew stops this long before its lease runs out, so that its last
# act is over before anyone else may lead.
STEP_DOWN_MARGIN = 3.0


def default_holder() -> str:
    """A name for this process that differs between replicas and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"[:64]


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
        await ensure_job_row(session, name)
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
    session_factory: async_sessionmaker[AsyncSession],
    name: str,
    until: datetime,
    *,
    holder: str | None = None,
) -> bool:
    """Record that job ``name`` has done its work up to ``until`` (``care.core.jobs``).

    With ``holder`` this is fenced: it happens only while ``holder`` still holds the leader
    lease, in the same statement; False when it does not (a stale leader records nothing).
    """
    async with session_factory() as session:
        return await jobs.mark_covered(
            session, name, until, holder=holder, lease_name=LEADER if holder else None
        )


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
        lease_ttl: timedelta = LEASE_TTL,
        renew_every: timedelta = RENEW_EVERY,
        deliver: bool = True,
        limiter: SendLimiter | None = None,
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
        self.renew_every = renew_every
        self.deliver = deliver
        self.limiter = limiter
        self._leading_until = -1.0  # monotonic deadline of the lease as last renewed
        self.worker: DeliveryWorker | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._stop = asyncio.Event()
        self._worker_task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[Any]] = set()
        # Lease renewals in flight: a stop waits for them too, so none is cut off mid-query.
        self._renewing: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the jobs (the first rules pass runs at once) and the delivery worker."""
        if self._scheduler is not None:
            return
        self._stop.clear()
        if self.deliver:
            self.worker = DeliveryWorker(
                self.bot, self.session_factory, self.config, self.clock, limiter=self.limiter
            )
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
            (
                HOUSEKEEPING_JOB,
                self.run_housekeeping,
                timedelta(hours=1),
                now + timedelta(minutes=1),
            ),
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
        # Renewal is a job of its own: it goes on while a long job runs, and it is what makes
        # a leader that lost its lease stop.
        scheduler.add_job(
            self.renew,
            "interval",
            id=RENEW_JOB,
            name=RENEW_JOB,
            seconds=self.renew_every.total_seconds(),
            next_run_time=now,
        )
        scheduler.start()
        self._scheduler = scheduler
        log.info("care scheduler started as %s", self.holder)

    async def stop(self) -> None:
        """Stop firing, let running jobs finish, stop the worker, and hand the lease over."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is None:
            return
        # Paused, not shut down yet: APScheduler's shutdown cancels the jobs still running.
        scheduler.pause()
        self._stop.set()
        pending = [task for task in (*self._running, *self._renewing) if not task.done()]
        if self._worker_task is not None:
            pending.append(self._worker_task)
        if pending:
            _done, late = await asyncio.wait(pending, timeout=STOP_TIMEOUT)
            for task in late:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*late, return_exceptions=True)
        scheduler.shutdown(wait=False)
        self._worker_task = None
        with contextlib.suppress(Exception):
            await release_lease(self.session_factory, self.holder)
        self._set_leading(False)
        log.info("care scheduler stopped")

    def kill(self) -> None:
        """Stop at once as a crashed process would: no job finishes, the lease is not given up.

        For failover drills and tests; ``stop`` is the clean way.
        """
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        for task in [*self._running, self._worker_task]:
            if task is not None:
                task.cancel()
        self._worker_task = None

    async def _tracked(self, job: Callable[[], Awaitable[Any]]) -> None:
        if self._stop.is_set():  # fired just as the scheduler stops: not started at all
            return
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        name = getattr(job, "__name__", str(job))
        started = time.perf_counter()
        outcome = "ok"
        try:
            await job()
        except asyncio.CancelledError:
            outcome = "cancelled"
            log.warning("scheduled job %s was stopped: this replica no longer leads", name)
        except Exception:  # a failed tick is logged and retried at the next one
            outcome = "failed"
            log.exception("scheduled job %s failed", name)
        finally:
            if task is not None:
                self._running.discard(task)
            SCHEDULER_RUNS.labels(name, outcome).inc()
            SCHEDULER_SECONDS.labels(name).observe(time.perf_counter() - started)

    # ---------------------------------------------------------------- leadership
    async def renew(self) -> bool:
        """Renew (or take) the lease; a leader that cannot stops its jobs before it expires."""
        if self._stop.is_set():  # stopping: the lease is being handed over, not renewed
            return False
        task = asyncio.current_task()
        if task is not None:
            self._renewing.add(task)
        try:
            try:
                leading = await self.is_leader()
            except Exception:
                log.warning("could not renew the leader lease", exc_info=True)
                leading = False
            if not leading and time.monotonic() >= self._leading_until:
                self._step_down()
            return leading
        finally:
            if task is not None:
                self._renewing.discard(task)

    def _step_down(self) -> None:
        was_leading = self._leading_until >= 0
        self._leading_until = -1.0
        self._set_leading(False)
        jobs = [task for task in self._running if not task.done()]
        for task in jobs:
            task.cancel()
        if was_leading:
            log.warning("this replica no longer leads the schedule (%d jobs stopped)", len(jobs))

    def _set_leading(self, leading: bool) -> None:
        LEADER_GAUGE.labels(self.holder).set(1 if leading else 0)

    # ------------------------------------------------------------------ the jobs
    async def is_leader(self) -> bool:
        """Take or renew the leader lease; only the leader runs the jobs below."""
        asked = time.monotonic()
        held = await acquire_lease(
            self.session_factory, self.holder, self.clock.now(), self.lease_ttl
        )
        if held:
            if self._leading_until < 0:
                log.info("this replica (%s) now leads the schedule", self.holder)
            deadline = asked + self.lease_ttl.total_seconds() - STEP_DOWN_MARGIN
            self._leading_until = max(deadline, asked)
            self._set_leading(True)
        elif self._leading_until >= 0:
            self._step_down()
        return held

    async def _covered(self, name: str, until: datetime) -> None:
        if not await mark_covered(self.session_factory, name, until, holder=self.holder):
            log.warning("%s ran but this replica lost the lead meanwhile; not recorded", name)

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
            await self._covered(RULES_JOB, now)
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
        await self._covered(SEGMENTS_JOB, now)
        log.info("segments refreshed: %s", stats)
        await self.run_value(now)
        return True

    async def run_value(self, now: datetime) -> bool:
        """Refit the customer-value model if its last fit is ``value_every`` old."""
        state = await job_state(self.session_factory, VALUE_JOB)
        last = state.covered_until if state is not None else None
        if last is not None and now - last < self.value_every - timedelta(seconds=5):
            return False
        # Imported on the first refit: the model brings numpy and scipy, some 0.3 s of imports
        # that the bot's start-up (ready to take updates within 3 s) need not wait for.
        from care.value.refresh import refresh_value

        value = await refresh_value(self.session_factory, self.clock, self.config)
        await mark_covered(self.session_factory, VALUE_JOB, now)
        log.info("customer value refreshed: %s", value)
        return True

    async def run_campaigns(self) -> int:
        """Launch due staff broadcasts if this replica leads."""
        if not await self.is_leader():
            return 0
        launched = await launch_due_campaigns(self.session_factory, self.config, self.clock)
        await self._covered(CAMPAIGNS_JOB, self.clock.now())
        if launched and self.worker is not None:
            self.worker.notify()
        return int(launched)

    async def run_housekeeping(self) -> int:
        """Forget update ids too old for Telegram to send again, if this replica leads."""
        if not await self.is_leader():
            return 0
        pruned = await prune_handled(self.session_factory, self.clock.now())
        await self._covered(HOUSEKEEPING_JOB, self.clock.now())
        return pruned
