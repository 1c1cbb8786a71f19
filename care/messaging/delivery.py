"""The delivery worker: drains the outbox into Telegram within its limits, recording everything.

A pass claims due rows in small batches (``queued`` → ``sending`` with a lease), sends them
concurrently through the rate limiter, and writes the results back in batched UPDATEs:

* sent → ``sent`` with Telegram's message id;
* 403 (the member blocked the bot) → ``skipped`` "unreachable", the member marked unreachable,
  never retried;
* 400 (chat not found, a text Telegram refuses) → ``failed``, never retried;
* 429 → back to ``queued`` after ``retry_after``, and the whole flow pauses that long;
* 5xx, or a network failure before the request left (no connection could be opened) →
  ``queued`` again with exponential backoff, ``failed`` after ``config.max_attempts`` attempts.

At claim time each row is checked again: a member who blocked the bot, deleted their data or
(for marketing) withdrew consent since the message was queued gets nothing.

Crash semantics: at most once. A row in ``sending`` whose lease expired belongs to a worker that
died between sending and recording; Telegram cannot be asked whether it went out, so it is
marked ``failed`` "interrupted" and never resent. The loss is bounded by the rows a worker holds
claimed: at most ``2 × batch_size`` (about one second of sending at the configured rate). A
request whose answer was lost after it reached Telegram (a timeout or a dropped connection) is
not retried for the same reason. A clean stop (``run``'s stop event) loses nothing: messages
not yet sent go back to ``queued``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    ForceReply,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from aiohttp import ClientConnectorError, ConnectionTimeoutError
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.clock import Clock
from care.core.config import CareConfig
from care.messaging.outbox import campaign_counts
from care.messaging.ratelimit import DEFAULT_MAX_PAUSE, RateLimiter
from storage.enums import MessageKind, OutboxStatus
from storage.repos.outbox import OutboxRepo, member_is_deleted

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the worker stopped mid-send; not resent to avoid a duplicate"
UNAUTHORIZED_BACKOFF = timedelta(minutes=1)
MAX_BACKOFF = timedelta(minutes=10)
ERROR_LIMIT = 255
RECOVERY_EVERY = 30.0  # seconds between looks for a dead worker's rows
# Network failures that happen before the request could reach Telegram: safe to retry.
NEVER_SENT = (ClientConnectorError, ConnectionTimeoutError)

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | ForceReply

__all__ = [
    "INTERRUPTED",
    "DeliveryStats",
    "DeliveryWorker",
    "campaign_counts",
    "default_batch_size",
    "default_concurrency",
    "in_flight_bound",
]


def default_batch_size(rate: float) -> int:
    """Rows claimed at once: half a second of sending, at least 10."""
    return max(10, math.ceil(rate / 2))


def default_concurrency(rate: float) -> int:
    """Requests on the wire at once: 50 ms of sending, at least 16."""
    return max(16, math.ceil(rate / 20))


def in_flight_bound(batch_size: int) -> int:
    """The most rows one worker holds in ``sending``: what a hard crash can lose."""
    return 2 * batch_size


def backoff(attempt: int) -> timedelta:
    """Delay before retry number ``attempt`` (1-based): 2 s, 4 s, 8 s … capped at 10 minutes."""
    return min(timedelta(seconds=2**attempt), MAX_BACKOFF)


def reply_markup_from(data: dict[str, Any] | None) -> Markup | None:
    """The aiogram markup object for a Bot API ``reply_markup`` dict stored in the outbox."""
    if not data:
        return None
    if "inline_keyboard" in data:
        return InlineKeyboardMarkup.model_validate(data)
    if "keyboard" in data:
        return ReplyKeyboardMarkup.model_validate(data)
    if data.get("remove_keyboard"):
        return ReplyKeyboardRemove.model_validate(data)
    if data.get("force_reply"):
        return ForceReply.model_validate(data)
    raise ValueError(f"unknown reply_markup shape with keys {sorted(data)}")


@dataclass(slots=True)
class DeliveryStats:
    """Counters since the worker started (for logs and benchmarks)."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    rate_limited: int = 0
    interrupted: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Claimed:
    id: int
    member_id: int | None
    chat_id: int
    kind: str
    text: str
    photo: str | None
    media_kind: str | None
    reply_markup: dict[str, Any] | None
    attempts: int


@dataclass(slots=True)
class _Result:
    row_id: int
    status: OutboxStatus
    skip_reason: str | None = None
    error: str | None = None
    message_id: int | None = None
    sent_at: datetime | None = None
    not_before: datetime | None = None
    chat_id: int | None = None
    attempted: bool = True
    unreachable_member: int | None = None

    def params(self) -> dict[str, Any]:
        return {
            "row_id": self.row_id,
            "new_status": self.status.value,
            "new_skip_reason": self.skip_reason,
            "new_last_error": self.error[:ERROR_LIMIT] if self.error else None,
            "new_message_id": self.message_id,
            "new_sent_at": self.sent_at,
            "new_not_before": self.not_before,
            "new_chat_id": self.chat_id,
            "attempts_delta": 1 if self.attempted else 0,
        }


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
        limiter: RateLimiter | None = None,
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
        self.limiter = limiter or RateLimiter(
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
        self._results: list[_Result] = []
        self._started: set[int] = set()
        self._recovered_at = -math.inf
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()

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

        Claims only while it holds at most one batch unrecorded, so at most two batches are in
        ``sending`` at any moment.
        """
        await self._recover_expired()
        loop = asyncio.get_running_loop()
        tasks: dict[asyncio.Task[None], _Claimed] = {}
        self._started = set()
        outstanding = 0
        handled = 0
        exhausted = False
        last_flush = loop.time()
        try:
            while True:
                stopping = stop is not None and stop.is_set()
                if stopping:
                    for task, row in tasks.items():
                        if row.id not in self._started:
                            task.cancel()
                elif not exhausted and outstanding <= self.batch_size:
                    rows, skipped = await self._claim()
                    handled += skipped
                    if not rows and not skipped:
                        exhausted = True
                    outstanding += len(rows)
                    for row in rows:
                        task = asyncio.create_task(self._deliver(row))
                        tasks[task] = row
                        task.add_done_callback(self._task_done(tasks))
                pending_results = len(self._results)
                if pending_results and (
                    pending_results >= self.batch_size
                    or not tasks
                    or loop.time() - last_flush >= self.flush_interval
                ):
                    recorded = await self._record()
                    outstanding -= recorded
                    handled += recorded
                    last_flush = loop.time()
                if (exhausted or stopping) and not tasks and not self._results:
                    return handled
                if tasks and (exhausted or stopping or outstanding > self.batch_size):
                    self._progress.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._progress.wait(), self.flush_interval)
        finally:
            for task in tasks:
                task.cancel()

    def _task_done(self, tasks: dict[asyncio.Task[None], _Claimed]) -> Any:
        def done(task: asyncio.Task[None]) -> None:
            row = tasks.pop(task, None)
            if row is not None and task.cancelled() and row.id not in self._started:
                # Stopping before this one left: it simply goes back to the queue. One
                # cancelled mid-request stays in ``sending``: its fate is unknown.
                self._results.append(_Result(row.id, OutboxStatus.QUEUED, attempted=False))
            if not tasks or len(self._results) >= self.batch_size:
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

    async def _claim(self) -> tuple[list[_Claimed], int]:
        now = self.clock.now()
        lease_until = now + self.lease
        async with self.session_factory() as session, session.begin():
            repo = OutboxRepo(session)
            rows = await repo.claim_due(now, lease_until, self.batch_size, marketing=False)
            if len(rows) < self.batch_size:
                rows += await repo.claim_due(
                    now, lease_until, self.batch_size - len(rows), marketing=True
                )
            states = await repo.member_states([r.member_id for r in rows if r.member_id])
            to_send: list[_Claimed] = []
            skips: list[_Result] = []
            for row in rows:
                reason = self._skip_reason(row.kind, states.get(row.member_id))
                if reason is None:
                    to_send.append(_Claimed(**row._asdict()))
                else:
                    skips.append(
                        _Result(row.id, OutboxStatus.SKIPPED, skip_reason=reason, attempted=False)
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
    async def _deliver(self, row: _Claimed) -> None:
        await self.limiter.chat_turn(row.chat_id)
        async with self._on_the_wire:
            await self.limiter.slot(row.chat_id)
            self._started.add(row.id)
            result = await self._send(row)
        # Appended only now: ``_record`` swaps the list while requests are on the wire.
        self._results.append(result)
        self._started.discard(row.id)
        if len(self._results) >= self.batch_size:
            self._progress.set()

    async def _send(self, row: _Claimed) -> _Result:
        try:
            message = await self._call(row)
        except TelegramRetryAfter as exc:
            paused = self.limiter.pause(exc.retry_after)
            self.stats.rate_limited += 1
            log.warning("Telegram asked to slow down: pausing %.0fs", paused)
            return _Result(
                row.id,
                OutboxStatus.QUEUED,
                error=exc.message,
                not_before=self.clock.now() + timedelta(seconds=exc.retry_after),
                attempted=False,
            )
        except TelegramForbiddenError as exc:
            if row.member_id is None:
                return _Result(row.id, OutboxStatus.FAILED, error=exc.message)
            return _Result(
                row.id,
                OutboxStatus.SKIPPED,
                skip_reason="unreachable",
                error=exc.message,
                unreachable_member=row.member_id,
            )
        except TelegramMigrateToChat as exc:
            # A group became a supergroup: same conversation, new id.
            return _Result(
                row.id,
                OutboxStatus.QUEUED,
                error=exc.message,
                chat_id=exc.migrate_to_chat_id,
                not_before=self.clock.now(),
                attempted=False,
            )
        except TelegramBadRequest as exc:
            return _Result(row.id, OutboxStatus.FAILED, error=exc.message)
        except TelegramUnauthorizedError as exc:
            # The token is wrong for every message alike: keep them all for when it is fixed.
            log.error("the Bot API refused the token: %s", exc.message)
            return _Result(
                row.id,
                OutboxStatus.QUEUED,
                error=exc.message,
                not_before=self.clock.now() + UNAUTHORIZED_BACKOFF,
                attempted=False,
            )
        except TelegramServerError as exc:
            return self._retry_later(row, exc.message)
        except TelegramNetworkError as exc:
            if isinstance(exc.__cause__, NEVER_SENT):
                return self._retry_later(row, exc.message)
            # The request may have reached Telegram before the answer was lost.
            return _Result(row.id, OutboxStatus.FAILED, error=f"uncertain: {exc.message}")
        except TelegramAPIError as exc:
            return _Result(row.id, OutboxStatus.FAILED, error=exc.message)
        except (ValidationError, ValueError, TypeError) as exc:
            log.warning("outbox row %s cannot be sent: %s", row.id, exc)
            return _Result(row.id, OutboxStatus.FAILED, error=f"invalid message: {exc}")
        return _Result(
            row.id,
            OutboxStatus.SENT,
            message_id=message.message_id,
            sent_at=self.clock.now(),
        )

    async def _call(self, row: _Claimed) -> Message:
        markup = reply_markup_from(row.reply_markup)
        if row.photo and row.media_kind and row.media_kind != "photo":
            return await self._send_media(row, markup)
        if row.photo:
            return await self.bot.send_photo(
                row.chat_id,
                row.photo,
                caption=row.text or None,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                request_timeout=self.request_timeout,
            )
        return await self.bot.send_message(
            row.chat_id,
            row.text,
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
            request_timeout=self.request_timeout,
        )

    async def _send_media(self, row: _Claimed, markup: Any) -> Message:
        """A staff answer's attachment other than a photo, by its file id."""
        assert row.photo is not None
        common: dict[str, Any] = {
            "reply_markup": markup,
            "request_timeout": self.request_timeout,
        }
        if row.media_kind == "sticker":
            return await self.bot.send_sticker(row.chat_id, row.photo, **common)
        if row.media_kind == "video_note":
            return await self.bot.send_video_note(row.chat_id, row.photo, **common)
        common["caption"] = row.text or None
        common["parse_mode"] = ParseMode.HTML
        senders = {
            "video": self.bot.send_video,
            "animation": self.bot.send_animation,
            "voice": self.bot.send_voice,
            "audio": self.bot.send_audio,
            "document": self.bot.send_document,
        }
        sender = senders.get(row.media_kind or "")
        if sender is None:
            raise ValueError(f"cannot send media of kind {row.media_kind!r}")
        return await sender(row.chat_id, row.photo, **common)  # type: ignore[operator]

    def _retry_later(self, row: _Claimed, error: str) -> _Result:
        attempt = row.attempts + 1
        if attempt >= self.config.max_attempts:
            return _Result(
                row.id, OutboxStatus.FAILED, error=f"gave up after {attempt} attempts: {error}"
            )
        return _Result(
            row.id,
            OutboxStatus.QUEUED,
            error=error,
            not_before=self.clock.now() + backoff(attempt),
        )

    # --------------------------------------------------------------- recording
    async def _record(self) -> int:
        results, self._results = self._results, []
        unreachable = [r.unreachable_member for r in results if r.unreachable_member is not None]
        for attempt in range(3):
            try:
                async with self.session_factory() as session, session.begin():
                    repo = OutboxRepo(session)
                    await repo.record([result.params() for result in results])
                    await repo.mark_members_unreachable(unreachable, self.clock.now())
                break
            except SQLAlchemyError:
                if attempt == 2:
                    raise
                log.warning("recording delivery results failed; retrying", exc_info=True)
                await asyncio.sleep(0.5 * (attempt + 1))
        self._count(results)
        return len(results)

    def _count(self, results: list[_Result]) -> None:
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


# ------------------------------------------------------------ standalone entry
def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m care.messaging.delivery",
        description="Drain the outbox once, or until stopped (SIGTERM/SIGINT stop cleanly).",
    )
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument(
        "--api-url", default=os.environ.get("TELEGRAM_API_URL", "https://api.telegram.org")
    )
    parser.add_argument("--token", default=os.environ.get("BOT_TOKEN"), help="default: $BOT_TOKEN")
    parser.add_argument("--rate", type=float, default=CareConfig.send_rate)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lease-seconds", type=float)
    parser.add_argument("--forever", action="store_true", help="keep draining until stopped")
    args = parser.parse_args(argv)
    if not args.database_url or not args.token:
        parser.error("needs --database-url and --token (or DATABASE_URL and BOT_TOKEN)")
    return args


async def _standalone(args: argparse.Namespace) -> None:
    import signal

    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    from storage.db import create_engine, create_session_factory

    engine = create_engine(args.database_url)
    session = AiohttpSession(api=TelegramAPIServer.from_base(args.api_url))
    bot = Bot(args.token, session=session)
    config = CareConfig(send_rate=args.rate)
    worker = DeliveryWorker(
        bot,
        create_session_factory(engine),
        config,
        Clock(),
        batch_size=args.batch_size,
        lease=timedelta(seconds=args.lease_seconds) if args.lease_seconds else None,
    )
    # As in the bot process: keep start-up's long-lived objects out of full collections.
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if args.forever:
            await worker.run(stop)
        else:
            while await worker.drain_once(stop):
                pass
    finally:
        await bot.session.close()
        await engine.dispose()
    print(worker.stats, flush=True)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_standalone(_parse_args(argv)))


if __name__ == "__main__":
    main()
