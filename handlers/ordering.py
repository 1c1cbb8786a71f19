"""Per-user update order across replicas: a queue per user in Redis, served by update id.

aiogram's ``RedisEventIsolation`` is a lock: waiters poll it and whichever polls first wins, so
one user's updates that arrive close together run in any order. Here each update takes a ticket
as it arrives (``UpdateQueueMiddleware``, before flood control, whose own Redis round trip
could reorder them) in a sorted set per user scored by its ``update_id`` — Telegram numbers a
bot's updates in increasing order — and the isolation lets an update run only when it is the
smallest ticket left and no other update of that user is running. When it finishes it hands
the turn straight to the next ticket (a wake-up list the next waiter blocks on), so no replica
polls in a tight loop.

A replica that dies holding the turn cannot block a user for good: the turn is a lease (the head
ticket's deadline in a hash), and a waiter removes a head whose lease ran out.

What the order depends on, precisely. Telegram sends update ``n`` at ``t`` and the same user's
``n+1`` a gap ``g`` later; each travels to Redis (network, balancer, the replica's own queue)
taking ``d_n`` and ``d_n+1``. ``n+1`` can start no earlier than ``SETTLE_SECONDS`` after its
ticket is queued, and ``n`` runs after it only if ``n``'s ticket was not queued by then,
that is if ``d_n - d_n+1 > g + SETTLE_SECONDS``. So the gap never causes a reorder — a
larger gap only widens the margin — and the one thing that can is *delivery skew*: one update
delayed on its way more than the gap plus 10 ms beyond its successor (a replica stalled that
long before it queued the ticket, a retried delivery). Nothing at a replica can know of an
update that has not reached it: Telegram's ids are per bot, not per user, so a missing id says
nothing about whose update is missing, and waiting for every missing id would hold up every
user. Such a late update is still handled, once, after the later one; Redis keeps the
last update id let run per user, and a late one is logged as ``out of order`` so the skew
can be seen and its cause fixed.

Other limits: a handler running past ``LEASE_SECONDS`` lets the next one start.

Without Redis, one process keeps the order with aiogram's ``SimpleEventIsolation`` (asyncio
locks are first-in, first-out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware
from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey
from aiogram.types import Chat, TelegramObject, Update, User
from redis.asyncio import Redis

from handlers.middlewares import Handler

log = logging.getLogger(__name__)

PREFIX = "carebot:order"
LEASE_SECONDS = 60
# A waiter looks again this often even without a wake-up (a lost wake-up, an expired lease).
RECHECK_SECONDS = 0.25
# A ticket at the head waits this long after it was queued before it runs, for an earlier
# update of the same user that reached another replica at the same moment to take its place.
SETTLE_SECONDS = 0.01

_ENQUEUE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], tostring(now + tonumber(ARGV[2])))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]) * 2)
return 1
"""

# 1 when ARGV[1] takes the turn (-1: takes it, but a later update of this user ran before it),
# 0 while another update holds it or an earlier ticket waits, or (as a fraction) how long a
# ticket at the head must still wait for its ``SETTLE``.
# The holder is a key of its own (expiring with its lease): a smaller ticket that arrives while
# a later one runs waits for it, so two updates of one user never run at once.
_TURN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = tonumber(ARGV[2])
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[1] then return 0 end
while true do
  local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if head == false or head == nil or head == ARGV[1] then
    local deadline = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
    local waited = now - (deadline - lease)
    local settle = tonumber(ARGV[3])
    if head == ARGV[1] and waited < settle then return tostring(settle - waited) end
    redis.call('SET', KEYS[3], ARGV[1], 'PX', math.ceil(lease * 1000))
    local last = tonumber(redis.call('GET', KEYS[4]) or '0')
    if tonumber(ARGV[1]) < last then return -1 end
    redis.call('SET', KEYS[4], ARGV[1], 'EX', math.ceil(lease * 10))
    return 1
  end
  local deadline = tonumber(redis.call('HGET', KEYS[2], head) or '0')
  if deadline > now then return 0 end
  redis.call('ZREM', KEYS[1], head)
  redis.call('HDEL', KEYS[2], head)
end
"""

_RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
if head then
  local wake = KEYS[1] .. ':wake:' .. head
  redis.call('LPUSH', wake, '1')
  redis.call('EXPIRE', wake, 30)
end
return 1
"""


@dataclass(frozen=True, slots=True)
class _Ticket:
    queue: str
    update_id: int

    @property
    def leases(self) -> str:
        return f"{self.queue}:lease"

    @property
    def holder(self) -> str:
        return f"{self.queue}:holder"

    @property
    def last(self) -> str:
        return f"{self.queue}:last"

    @property
    def wake(self) -> str:
        return f"{self.queue}:wake:{self.update_id}"


_ticket: ContextVar[_Ticket | None] = ContextVar("carebot_order_ticket", default=None)


class RedisUpdateQueue:
    """The shared per-user queues; one instance per process, all replicas on one Redis."""

    def __init__(self, redis: Redis, *, lease_seconds: int = LEASE_SECONDS) -> None:
        self.redis = redis
        self.lease_seconds = lease_seconds
        self._enqueue = redis.register_script(_ENQUEUE)
        self._turn = redis.register_script(_TURN)
        self._release = redis.register_script(_RELEASE)
        # Tickets leave this process in the order updates arrived here: requests on separate
        # pooled connections could otherwise reach Redis in any order.
        self._in_arrival_order = asyncio.Lock()

    async def enqueue(self, chat_id: int, user_id: int, update_id: int) -> _Ticket:
        ticket = _Ticket(f"{PREFIX}:{chat_id}:{user_id}", update_id)
        async with self._in_arrival_order:
            await self._enqueue(
                keys=[ticket.queue, ticket.leases], args=[update_id, self.lease_seconds]
            )
        return ticket

    async def wait_turn(self, ticket: _Ticket) -> None:
        keys = [ticket.queue, ticket.leases, ticket.holder, ticket.last]
        args = [ticket.update_id, self.lease_seconds, SETTLE_SECONDS]
        while True:
            answer = float(await self._turn(keys=keys, args=args))
            if answer == 1:
                break
            if answer == -1:
                log.warning(
                    "update %s (%s) out of order: a later update of this user ran before it "
                    "reached Redis (delivery skew)",
                    ticket.update_id,
                    ticket.queue.removeprefix(f"{PREFIX}:"),
                )
                break
            if answer > 0:
                await asyncio.sleep(answer)
            else:
                await self.redis.blpop([ticket.wake], timeout=RECHECK_SECONDS)
        await self.redis.delete(ticket.wake)

    async def release(self, ticket: _Ticket) -> None:
        await self._release(
            keys=[ticket.queue, ticket.leases, ticket.holder], args=[ticket.update_id]
        )


class UpdateQueueMiddleware(BaseMiddleware):
    """Gives each user's update its place in the queue the moment it arrives."""

    def __init__(self, queue: RedisUpdateQueue) -> None:
        self.queue = queue

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        if not isinstance(event, Update) or user is None:
            return await handler(event, data)
        ticket = await self.queue.enqueue(chat.id if chat else user.id, user.id, event.update_id)
        token = _ticket.set(ticket)
        try:
            return await handler(event, data)
        finally:
            _ticket.reset(token)
            # Also when flood control dropped the update before its turn came.
            await self.queue.release(ticket)


class QueuedEventIsolation(BaseEventIsolation):
    """The FSM's isolation: an update runs when its ticket is first in its user's queue."""

    def __init__(self, queue: RedisUpdateQueue, fallback: BaseEventIsolation) -> None:
        self.queue = queue
        self.fallback = fallback

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        ticket = _ticket.get()
        if ticket is None:  # an event with no user: plain mutual exclusion is all it needs
            async with self.fallback.lock(key):
                yield None
            return
        await self.queue.wait_turn(ticket)
        try:
            yield None
        finally:
            with contextlib.suppress(Exception):
                await self.queue.release(ticket)

    async def close(self) -> None:
        await self.fallback.close()
