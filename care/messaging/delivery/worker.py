"""The delivery loop: claims due outbox rows in batches, sends them concurrently through the
rate limiter (``sending.Sender``) and writes the results back in batched UPDATEs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from datetime import timedelta
from typing import Any

from aiogram import Bot
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.retry import RetryPolicy
from care.messaging.delivery.results import (
    INTERRUPTED,
    RECOVERY_EVERY,
    Claimed,
    DeliveryStats,
    Result,
    default_batch_size,
    default_concurrency,
    in_flight_bound,
)
from care.messaging.delivery.sending import Sender
from care.messaging.ratelimit import DEFAULT_MAX_PAUSE, RateLimiter, SendLimiter
from storage.enums import MessageKind, OutboxStatus
from storage.repos.outbox import OutboxRepo, member_is_deleted

log = logging.getLogger(__name__)
# The results describe messages already sent: any database failure (not only contention) is
# worth a few more tries before their record is given up.
RECORD_RETRY = RetryPolicy(
    attempts=3, base_delay=0.5, transient=lambda exc: isinstance(exc, SQLAlchemyError)
)


class DeliveryWorker:
    """Sends what the outbox holds. One per bot token and process; replicas may run side by side.

    ``drain_once()`` sends everything due now and returns; ``run(stop)`` keeps draining until
    ``stop`` is set, then hands unsent claims back to the queue.
    """

    def __init__(
        self,
        bot: Bot,
        session_factory: async_sessionmaker[AsyncSession],
        config: CareConfig,
        clock: Clock,
        *,
        limiter: SendLimiter | None = None,
        batch_size: int | None = None,
        concurrency: int | None = None,
        lease: timedelta | None = None,
        max_pause: float = DEFAULT_MAX_PAUSE,
        request_timeout: int = 20,
        flush_interval: float = 0.25,
        idle_interval: float = 1.0,
    ) -> None:
        self.bot = bot
        self.session_factory = session_factory
        self.config = config
        self.clock = clock
        self.limiter: SendLimiter = limiter or RateLimiter(
            config.send_rate, config.per_chat_interval, max_pause=max_pause
        )
        self.batch_size = batch_size or default_batch_size(config.send_rate)
        # A cap on requests in flight: when Telegram (or the network) stalls, at most this many
        # pile up and arrive together afterwards, instead of a second's worth breaking the limit.
        self._on_the_wire = asyncio.Semaphore(concurrency or default_concurrency(config.send_rate))
        self.request_timeout = request_timeout
        # Long enough for everything a claimed row may wait for: its turn, a 429 pause, the
        # request itself. Only a dead worker's rows outlive it.
        self.lease = lease or timedelta(
            seconds=in_flight_bound(self.batch_size) / config.send_rate
            + self.limiter.max_pause
            + request_timeout
            + 60
        )
        self.flush_interval = flush_interval
        self.idle_interval = idle_interval
        self.stats = DeliveryStats()
        self.sender = Sender(bot, config, clock, self.limiter, self.stats, request_timeout)
        self._results: list[Result] = []
        self._started: set[int] = set()
        self._recovered_at = -math.inf
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._enough: float = self.batch_size  # results that wake the drain loop
        # Claim again once this few rows are in ``sending``: half a batch fits under the bound.
        self._claim_at = self.in_flight_bound - max(1, self.batch_size // 2)

    @property
    def in_flight_bound(self) -> int:
        return in_flight_bound(self.batch_size)

    def notify(self) -> None:
        """Something was queued: end the idle wait of ``run`` now."""
        self._wake.set()

    # ------------------------------------------------------------------ the loop
    async def run(self, stop: asyncio.Event) -> None:
        """Drain until ``stop`` is set; a failed pass (database hiccup) is logged and retried."""
        log.info(
            "delivery worker started: %.0f msg/s, batch %d, lease %ss",
            self.config.send_rate,
            self.batch_size,
            int(self.lease.total_seconds()),
        )
        while not stop.is_set():
            try:
                handled = await self.drain_once(stop)
            except Exception:  # the worker outlives any one pass: log, wait, go on
                log.exception("delivery pass failed; retrying shortly")
                handled = 0
            if stop.is_set() or handled:
                continue
            self._wake.clear()
            stopping = asyncio.ensure_future(stop.wait())
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait(
                    {stopping, woken},
                    timeout=self.idle_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                stopping.cancel()
                woken.cancel()
        log.info("delivery worker stopped: %s", self.stats)

    async def drain_once(self, stop: asyncio.Event | None = None) -> int:
        """Send every message due now; returns how many rows this pass resolved.

        Claims (at most a batch at a time) whenever half a batch fits under the bound of two
        batches in ``sending``, so that a slow claim still finds most of a second's sending
        ahead of it. Results are written in the background, one write at a time,
        while sending and claiming go on: a slow write (a busy disk, a loaded machine) then
        delays the next claim only by itself, never the sends already claimed.
        """
        await self._recover_expired()
        loop = asyncio.get_running_loop()
        tasks: dict[asyncio.Task[None], Claimed] = {}
        self._started = set()
        outstanding = 0
        handled = 0
        exhausted = False
        last_flush = loop.time()
        recording: asyncio.Task[int] | None = None
        try:
            while True:
                if recording is not None and recording.done():
                    recorded = recording.result()  # a failed write ends the pass, as before
                    recording = None
                    outstanding -= recorded
                    handled += recorded
                stopping = stop is not None and stop.is_set()
                if stopping:
                    for task, row in tasks.items():
                        if row.id not in self._started:
                            task.cancel()
                elif not exhausted and outstanding <= self._claim_at:
                    limit = min(self.batch_size, self.in_flight_bound - outstanding)
                    rows, skipped = await self._claim(limit)
                    handled += skipped
                    if not rows and not skipped:
                        exhausted = True
                    outstanding += len(rows)
                    for row in rows:
                        task = asyncio.create_task(self._deliver(row))
                        tasks[task] = row
                        task.add_done_callback(self._task_done(tasks))
                    continue
                pending_results = len(self._results)
                claiming = not (exhausted or stopping)
                if (
                    recording is None
                    and pending_results
                    and (
                        pending_results >= self.batch_size
                        or not tasks
                        or (claiming and outstanding - pending_results <= self._claim_at)
                        or loop.time() - last_flush >= self.flush_interval
                    )
                ):
                    recording = asyncio.create_task(self._record())
                    recording.add_done_callback(lambda _: self._progress.set())
                    last_flush = loop.time()
                    continue
                if (exhausted or stopping) and not tasks and not self._results:
                    if recording is None:
                        return handled
                    await asyncio.wait({recording})
                    continue
                # Wake for enough results to record: as soon as recording them lets the next
                # claim go (or a batch's worth); while a write runs, for its end.
                if recording is not None:
                    self._enough = math.inf
                elif claiming:
                    self._enough = max(1, min(self.batch_size, outstanding - self._claim_at))
                else:
                    self._enough = self.batch_size
                self._progress.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._progress.wait(), self.flush_interval)
        finally:
            for task in tasks:
                task.cancel()
            if recording is not None:
                # Never cut a write of results short: those messages went out.
                await asyncio.wait({recording})
                if not recording.cancelled():
                    recording.exception()  # retrieved; the pass is ending anyway

    def _task_done(self, tasks: dict[asyncio.Task[None], Claimed]) -> Any:
        def done(task: asyncio.Task[None]) -> None:
            row = tasks.pop(task, None)
            if row is not None and task.cancelled() and row.id not in self._started:
                # Stopping before this one left: it simply goes back to the queue. One
                # cancelled mid-request stays in ``sending``: its fate is unknown.
                self._results.append(Result(row.id, OutboxStatus.QUEUED, attempted=False))
            if not tasks or len(self._results) >= self._enough:
                self._progress.set()

        return done

    # ---------------------------------------------------------------- claiming
    async def _recover_expired(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._recovered_at < RECOVERY_EVERY:
            return
        self._recovered_at = now
        async with self.session_factory() as session, session.begin():
            lost = await OutboxRepo(session).fail_expired_leases(self.clock.now(), INTERRUPTED)
        if lost:
            self.stats.interrupted += lost
            log.warning(
                "%d messages were in flight when a delivery worker died; marked failed "
                "(interrupted) rather than risk sending them twice",
                lost,
            )

    async def _claim(self, limit: int) -> tuple[list[Claimed], int]:
        now = self.clock.now()
        lease_until = now + self.lease
        async with self.session_factory() as session, session.begin():
            repo = OutboxRepo(session)
            rows = await repo.claim_due(now, lease_until, limit, marketing=False)
            if len(rows) < limit:
                rows += await repo.claim_due(now, lease_until, limit - len(rows), marketing=True)
            states = await repo.member_states([r.member_id for r in rows if r.member_id])
            to_send: list[Claimed] = []
            skips: list[Result] = []
            for row in rows:
                reason = self._skip_reason(row.kind, states.get(row.member_id))
                if reason is None:
                    to_send.append(Claimed(**row._asdict()))
                else:
                    skips.append(
                        Result(row.id, OutboxStatus.SKIPPED, skip_reason=reason, attempted=False)
                    )
            await repo.record([skip.params() for skip in skips])
        self._count(skips)
        return to_send, len(skips)

    @staticmethod
    def _skip_reason(kind: str, state: Any) -> str | None:
        if state is None:
            return None
        if member_is_deleted(state):
            return "deleted"
        if state.blocked_at is not None:
            return "unreachable"
        if kind == MessageKind.MARKETING and not state.marketing_opt_in:
            return "no_consent"
        return None

    # ----------------------------------------------------------------- sending
    async def _deliver(self, row: Claimed) -> None:
        await self.limiter.chat_turn(row.chat_id)
        async with self._on_the_wire:
            ticket = await self.limiter.slot(row.chat_id)
            self._started.add(row.id)
            try:
                result = await self.sender.send(row)
            finally:
                await self._sent(row.chat_id, ticket)
        # Appended only now: ``_record`` swaps the list while requests are on the wire.
        self._results.append(result)
        self._started.discard(row.id)
        if len(self._results) >= self._enough:
            self._progress.set()

    async def _sent(self, chat_id: int, ticket: object) -> None:
        try:
            await self.limiter.sent(chat_id, ticket)
        except Exception:  # the limiter then counts it until its hold runs out: only slower
            log.warning("could not record a send with the rate limiter", exc_info=True)

    # --------------------------------------------------------------- recording
    async def _record(self) -> int:
        results, self._results = self._results, []
        unreachable = [r.unreachable_member for r in results if r.unreachable_member is not None]

        async def record() -> None:
            async with self.session_factory() as session, session.begin():
                repo = OutboxRepo(session)
                await repo.record([result.params() for result in results])
                await repo.mark_members_unreachable(unreachable, self.clock.now())

        await RECORD_RETRY.run(record)
        self._count(results)
        return len(results)

    def _count(self, results: list[Result]) -> None:
        stats = self.stats
        for result in results:
            if result.status == OutboxStatus.SENT:
                stats.sent += 1
            elif result.status == OutboxStatus.FAILED:
                stats.failed += 1
            elif result.status == OutboxStatus.SKIPPED:
                stats.skipped += 1
                reason = result.skip_reason or "?"
                stats.by_reason[reason] = stats.by_reason.get(reason, 0) + 1
            elif result.attempted:
                stats.retried += 1
