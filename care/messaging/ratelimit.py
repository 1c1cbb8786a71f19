"""Keeping Telegram's limits: a global send rate, one message a second per chat, 429 pauses.

The limiter hands out send times instead of counting failures: every caller reserves the next
free slot of an evenly spaced schedule (``1 / rate`` apart) and sleeps until it. Nothing
polls; a sleeping caller costs one timer. A chat's own turn is reserved first, so a message
waiting for its chat never holds a global slot that another chat could use.

Time here is the event loop's monotonic clock: limits are about real seconds on the wire, not
about the business clock (``care.core.clock``) that tests move.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque

DEFAULT_MAX_PAUSE = 300.0
# Rebuild the per-chat tables when they hold this many entries and some are stale.
_PRUNE_AT = 4096


class RateLimiter:
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
        if not 0 < rate <= 10_000:
            raise ValueError(f"rate must be in (0, 10000] messages/s, got {rate}")
        if per_chat_interval < 0:
            raise ValueError("per_chat_interval cannot be negative")
        self.rate = rate
        self.interval = 1.0 / rate
        self.per_chat_interval = per_chat_interval
        self.max_pause = max_pause
        self._next_slot = -math.inf
        self._paused_until = -math.inf
        self._chat_turn: dict[int, float] = {}  # when a chat's next reservation may start
        self._chat_sent: dict[int, float] = {}  # when a chat's last message actually went
        self._pruned_at = -math.inf
        # The last second's sends: a late timer may bunch sends up, and this never lets
        # more than ``rate`` of them into any one second.
        self._window: deque[float] = deque(maxlen=max(1, math.floor(rate)))

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

    async def acquire(self, chat_id: int) -> None:
        """Wait until a message to ``chat_id`` may go out, and count it as sent now."""
        await self.chat_turn(chat_id)
        await self.slot(chat_id)

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
            slot = max(now, self._next_slot, self._paused_until)
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
        if self.per_chat_interval > 0:
            self._chat_sent[chat_id] = now
            self._chat_turn[chat_id] = max(
                self._chat_turn.get(chat_id, -math.inf), now + self.per_chat_interval
            )
            self._prune(now)

    def _prune(self, now: float) -> None:
        # A broadcast touches each chat once: forget chats whose interval has passed, or the
        # tables would grow with the audience.
        if len(self._chat_sent) < _PRUNE_AT or now - self._pruned_at < self.per_chat_interval:
            return
        horizon = now - self.per_chat_interval
        self._chat_sent = {c: t for c, t in self._chat_sent.items() if t > horizon}
        self._chat_turn = {c: t for c, t in self._chat_turn.items() if t > now}
        self._pruned_at = now
