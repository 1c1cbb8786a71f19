"""Keeping Telegram's limits: a global send rate, one message a second per chat, 429 pauses.

The limiter hands out send times instead of counting failures: every caller reserves the next
free slot of an evenly spaced schedule (``1 / rate`` apart) and sleeps until it. Nothing
polls; a sleeping caller costs one timer. A chat's own turn is reserved first, so a message
waiting for its chat never holds a global slot that another chat could use.

Time here is the event loop's monotonic clock: limits are about real seconds on the wire, not
about the business clock (``care.core.clock``) that tests move.

``RateLimiter`` holds its schedule in this process: right for one process. Replicas share one
``RedisRateLimiter`` schedule instead (the same reservations, made atomically by Lua scripts on
the Redis server's clock), so the bot as a whole keeps ``SEND_RATE`` and the per-chat interval
however many replicas send. A hand-written limiter because the reservation (a turn handed out
ahead of time, never a refusal to retry) is what keeps senders from polling.

A schedule that fell behind — a timer that fired late on a busy machine, a slow answer that
held every place on the wire — catches up by at most ``CATCH_UP`` seconds of slots, handed
out at once, and only while the messages admitted in the last second plus those still on their
way stay under ``rate`` (so a make-up burst never lands on top of requests piled up at
Telegram); a longer gap (an idle outbox, a stall) starts a fresh schedule from now, as before.
The limit itself never moves: no more than ``rate`` messages are admitted in any one second
(the in-process window; the admission script in Redis), however the slots bunch up.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections import deque
from typing import Any, Protocol

log = logging.getLogger(__name__)

DEFAULT_MAX_PAUSE = 300.0
# How far behind its evenly spaced schedule the limiter may catch up (see the docstring).
CATCH_UP = 0.1
# Rebuild the per-chat tables when they hold this many entries and some are stale.
_PRUNE_AT = 4096


class SendLimiter(Protocol):
    """What the delivery worker needs of a limiter (``RateLimiter`` or ``RedisRateLimiter``)."""

    max_pause: float

    @property
    def paused_for(self) -> float: ...

    def pause(self, seconds: float) -> float: ...

    async def chat_turn(self, chat_id: int) -> None: ...

    async def slot(self, chat_id: int) -> object: ...

    async def sent(self, chat_id: int, ticket: object) -> None: ...

    async def acquire(self, chat_id: int) -> None: ...


class _Limits:
    """What both limiters share: the settings, checked, and the 429 pause as this process
    knows it (``RedisRateLimiter`` also shares its pauses with the other replicas)."""

    def __init__(self, rate: float, per_chat_interval: float, max_pause: float) -> None:
        if not 0 < rate <= 10_000:
            raise ValueError(f"rate must be in (0, 10000] messages/s, got {rate}")
        if per_chat_interval < 0:
            raise ValueError("per_chat_interval cannot be negative")
        self.rate = rate
        self.interval = 1.0 / rate
        self.per_chat_interval = per_chat_interval
        self.max_pause = max_pause
        self._paused_until = -math.inf

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    @property
    def paused_for(self) -> float:
        """Seconds left of the current 429 pause (0 when not paused)."""
        return max(0.0, self._paused_until - self._now())

    def pause(self, seconds: float) -> float:
        """Hold every sender for ``seconds`` (bounded by ``max_pause``); returns the pause."""
        seconds = min(max(0.0, float(seconds)), self.max_pause)
        self._paused_until = max(self._paused_until, self._now() + seconds)
        return seconds


class RateLimiter(_Limits):
    """An async limiter for one bot token: ``await limiter.acquire(chat_id)`` before each send.

    ``rate`` is messages per second over all chats; ``per_chat_interval`` the seconds between
    two messages to one chat (0 disables it). ``pause(seconds)`` stops the whole flow after a
    429, for at most ``max_pause`` seconds.
    """

    def __init__(
        self,
        rate: float,
        per_chat_interval: float = 1.0,
        *,
        max_pause: float = DEFAULT_MAX_PAUSE,
    ) -> None:
        super().__init__(rate, per_chat_interval, max_pause)
        self._next_slot = -math.inf
        self._chat_turn: dict[int, float] = {}  # when a chat's next reservation may start
        self._chat_sent: dict[int, float] = {}  # when a chat's last message actually went
        self._pruned_at = -math.inf
        # The last second's sends: a late timer may bunch sends up, and this never lets
        # more than ``rate`` of them into any one second.
        self._window: deque[float] = deque(maxlen=max(1, math.floor(rate)))
        self._in_flight = 0  # admitted by ``slot``, not yet reported back by ``sent``

    async def acquire(self, chat_id: int) -> None:
        """Wait until a message to ``chat_id`` may go out, and count it as sent now."""
        await self.chat_turn(chat_id)
        await self.slot(chat_id)
        await self.sent(chat_id, None)

    def _may_catch_up(self, now: float) -> bool:
        """Whether a missed slot may still be used: the last second's admissions and the
        requests on their way leave room under the rate."""
        window = self._window
        while window and now - window[0] >= 1.0:
            window.popleft()
        return len(window) + self._in_flight < (window.maxlen or 1)

    async def chat_turn(self, chat_id: int) -> None:
        """Wait for ``chat_id``'s turn (the first half of ``acquire``).

        Callers that cap their requests in flight wait for the chat's turn before taking a
        place under the cap, so that a busy chat never holds a place others could use.
        """
        if self.per_chat_interval <= 0:
            return
        now = self._now()
        turn = max(now, self._chat_turn.get(chat_id, -math.inf))
        self._chat_turn[chat_id] = turn + self.per_chat_interval
        if turn > now:
            await asyncio.sleep(turn - now)

    async def slot(self, chat_id: int) -> None:
        """Wait for a global slot after ``chat_turn`` and count the message as sent now."""
        while True:
            now = self._now()
            behind = now - self._next_slot
            if 0 < behind <= CATCH_UP and self._may_catch_up(now):
                slot = self._next_slot
            else:
                slot = max(now, self._next_slot)
            slot = max(slot, self._paused_until)
            self._next_slot = slot + self.interval
            if slot > now:
                await asyncio.sleep(slot - now)
            # A 429 may have paused the flow while this caller slept: take a slot after it.
            if self._now() >= self._paused_until:
                break
        if self.per_chat_interval > 0:
            # The chat's previous message may have left late (its global slot came after its
            # chat turn): keep the full interval after when it really went.
            last = self._chat_sent.get(chat_id)
            now = self._now()
            if last is not None and now < last + self.per_chat_interval:
                await asyncio.sleep(last + self.per_chat_interval - now)
        window = self._window
        while True:
            now = self._now()
            if len(window) < (window.maxlen or 1) or now - window[0] >= 1.0:
                break
            await asyncio.sleep(window[0] + 1.0 - now)
        window.append(now)
        self._in_flight += 1
        if self.per_chat_interval > 0:
            self._chat_sent[chat_id] = now
            self._chat_turn[chat_id] = max(
                self._chat_turn.get(chat_id, -math.inf), now + self.per_chat_interval
            )
            self._prune(now)

    async def sent(self, chat_id: int, ticket: object) -> None:
        """The request admitted by ``slot`` is over: it no longer holds back a catch-up (the
        window itself counts each message from its admission)."""
        self._in_flight = max(0, self._in_flight - 1)

    def _prune(self, now: float) -> None:
        # A broadcast touches each chat once: forget chats whose interval has passed, or the
        # tables would grow with the audience.
        if len(self._chat_sent) < _PRUNE_AT or now - self._pruned_at < self.per_chat_interval:
            return
        horizon = now - self.per_chat_interval
        self._chat_sent = {c: t for c, t in self._chat_sent.items() if t > horizon}
        self._chat_turn = {c: t for c, t in self._chat_turn.items() if t > now}
        self._pruned_at = now


# Both scripts time everything by the Redis server's clock and return seconds to wait.
# A chat's next turn: reserved ``per_chat`` apart, like RateLimiter.chat_turn.
_CHAT_TURN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local per_chat = tonumber(ARGV[1])
local turn = tonumber(redis.call('GET', KEYS[1]) or now)
if turn < now then turn = now end
local ttl = math.ceil((turn - now + per_chat) * 1000) + 1000
redis.call('SET', KEYS[1], tostring(turn + per_chat), 'PX', ttl)
return tostring(turn - now)
"""

# A global slot: evenly spaced (catching up at most ``catch_up`` seconds), never inside a 429
# pause.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local catch_up = tonumber(ARGV[2])
local slot = tonumber(redis.call('GET', KEYS[1]) or now)
local paused = tonumber(redis.call('GET', KEYS[2]) or 0)
if slot < now - catch_up then slot = now end
if slot < paused then slot = paused end
local ttl = math.ceil((math.max(slot - now, 0) + interval) * 1000) + 1000
redis.call('SET', KEYS[1], tostring(slot + interval), 'PX', ttl)
return tostring(slot - now)
"""

# The last check before a message goes: not paused, the chat's interval since its last message,
# and fewer than ``limit`` messages in the last ``window`` seconds. Admits (returns 0) and
# records the send as in flight — it counts until ``hold`` seconds from now, until _SENT
# records when its answer came — or returns how long to wait before asking again.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local per_chat = tonumber(ARGV[3])
local hold = tonumber(ARGV[5])
local recheck = tonumber(ARGV[6])
local paused = tonumber(redis.call('GET', KEYS[2]) or 0)
if now < paused then return tostring(paused - now) end
if per_chat > 0 then
  local last = tonumber(redis.call('GET', KEYS[3]) or 0)
  if now < last + per_chat then return tostring(math.min(last + per_chat - now, recheck)) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local wait = tonumber(oldest[2]) + window - now
  if wait < 0.001 then wait = 0.001 end
  return tostring(math.min(wait, recheck))
end
redis.call('ZADD', KEYS[1], now + hold, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil((hold + window) * 1000) + 1000)
if per_chat > 0 then
  redis.call('SET', KEYS[3], tostring(now + hold), 'PX', math.ceil((hold + per_chat) * 1000))
end
return '0'
"""

# The answer to an admitted message came back: it reached Telegram before now, so from now on
# it counts from now — the latest moment it can have arrived.
_SENT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local per_chat = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[3])
if per_chat > 0 then
  redis.call('SET', KEYS[2], tostring(now), 'PX', math.ceil(per_chat * 1000) + 1000)
end
return 1
"""

_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or 0)
if until_ > current then
  redis.call('SET', KEYS[1], tostring(until_), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""

# A message in flight counts against the limits until its answer, or this long at most (a
# replica that died mid-request).
IN_FLIGHT_HOLD = 30.0
RECHECK = 0.1


class RedisRateLimiter(_Limits):
    """``RateLimiter``'s schedule kept in Redis: one send rate and one per-chat interval for
    every replica of the bot (``SEND_RATE`` is the bot's, not each process's).

    Per message: the chat's turn, a global slot (both reserved ahead, so senders sleep rather
    than poll), then the admission into a shared one-second window, and after the answer the
    record of when it came. A message counts in the window from its admission until a second
    after its answer: it reached Telegram somewhere in between, so however late one replica's
    request travels, no second at Telegram ever holds more than ``rate`` messages, and no chat
    two within ``per_chat_interval``. A 429 pauses every replica.
    """

    def __init__(
        self,
        redis: Any,
        rate: float,
        per_chat_interval: float = 1.0,
        *,
        max_pause: float = DEFAULT_MAX_PAUSE,
        namespace: str = "carebot:send",
    ) -> None:
        super().__init__(rate, per_chat_interval, max_pause)
        self.redis = redis
        self.window = 1.0
        self.limit = max(1, math.floor(rate))
        self.namespace = namespace
        self._pausing: set[asyncio.Task[Any]] = set()
        self._chat_turn = redis.register_script(_CHAT_TURN)
        self._reserve = redis.register_script(_RESERVE)
        self._admit = redis.register_script(_ADMIT)
        self._sent = redis.register_script(_SENT)
        self._pause = redis.register_script(_PAUSE)

    def _key(self, name: str) -> str:
        return f"{self.namespace}:{name}"

    def pause(self, seconds: float) -> float:
        """Hold every replica's senders for ``seconds`` (bounded by ``max_pause``)."""
        seconds = super().pause(seconds)
        task = asyncio.get_running_loop().create_task(self._share_pause(seconds))
        self._pausing.add(task)
        task.add_done_callback(self._pausing.discard)
        return seconds

    async def _share_pause(self, seconds: float) -> None:
        try:
            await self._pause(keys=[self._key("paused")], args=[seconds])
        except Exception:  # the local pause still holds this replica
            log.warning("could not share a 429 pause through Redis", exc_info=True)

    async def acquire(self, chat_id: int) -> None:
        """Wait until a message to ``chat_id`` may go out, and count it as sent now."""
        await self.chat_turn(chat_id)
        await self.sent(chat_id, await self.slot(chat_id))

    async def chat_turn(self, chat_id: int) -> None:
        if self.per_chat_interval <= 0:
            return
        wait = float(
            await self._chat_turn(
                keys=[self._key(f"turn:{chat_id}")], args=[self.per_chat_interval]
            )
        )
        if wait > 0:
            await asyncio.sleep(wait)

    async def slot(self, chat_id: int) -> str:
        """Wait until the message may go; returns the ticket to hand to ``sent`` afterwards."""
        wait = float(
            await self._reserve(
                keys=[self._key("next"), self._key("paused")], args=[self.interval, CATCH_UP]
            )
        )
        if wait > 0:
            await asyncio.sleep(wait)
        keys = [self._key("window"), self._key("paused"), self._key(f"sent:{chat_id}")]
        ticket = uuid.uuid4().hex
        args = [self.window, self.limit, self.per_chat_interval, ticket, IN_FLIGHT_HOLD, RECHECK]
        while True:
            local_pause = self._paused_until - self._now()
            if local_pause > 0:
                await asyncio.sleep(local_pause)
            wait = float(await self._admit(keys=keys, args=args))
            if wait <= 0:
                return ticket
            await asyncio.sleep(wait)

    async def sent(self, chat_id: int, ticket: object) -> None:
        """The request for ``ticket`` is over (answered or failed): count it from now."""
        await self._sent(
            keys=[self._key("window"), self._key(f"sent:{chat_id}")],
            args=[self.window, self.per_chat_interval, str(ticket)],
        )


def create_limiter(
    send_rate: float, per_chat_interval: float, redis_url: str | None
) -> SendLimiter:
    """The send limiter: shared by every replica and worker through Redis when there is one,
    this process's own otherwise."""
    if redis_url:
        from redis.asyncio import Redis

        return RedisRateLimiter(Redis.from_url(redis_url), send_rate, per_chat_interval)
    return RateLimiter(send_rate, per_chat_interval)


async def close_limiter(limiter: SendLimiter) -> None:
    """Close the Redis connection a shared limiter holds (nothing for an in-process one)."""
    redis = getattr(limiter, "redis", None)
    if redis is not None:
        await redis.aclose()
