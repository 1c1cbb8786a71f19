"""The one retry policy for short database transactions that lose to contention.

SQLite answers a second writer with "database is locked" once its busy timeout runs out, and
PostgreSQL aborts a transaction that lost a serialization check or a deadlock; both are worth
one more try a moment later, and nothing else is. ``RetryPolicy.run`` runs a whole unit of work
again (the work rolls its own transaction back before raising), a bounded number of times, with
exponential backoff.

Hand-written rather than taken from a retry library: it is a dozen lines, and the part that
matters here (which database errors are transient, and re-loading what a rollback expired
before the next attempt) would be ours either way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

T = TypeVar("T")

_CONTENTION_WORDS = ("locked", "busy", "serializ", "deadlock")


def is_contention(exc: BaseException) -> bool:
    """The database refused because another transaction held or changed the same rows."""
    if not isinstance(exc, DBAPIError):
        return False
    text = str(exc.orig if exc.orig is not None else exc).lower()
    return any(word in text for word in _CONTENTION_WORDS)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Up to ``attempts`` tries; before try ``n + 1`` wait ``base_delay × 2ⁿ`` seconds.

    ``transient`` decides which failures are worth another try; anything else is raised at once,
    and so is the last try's failure.
    """

    attempts: int = 5
    base_delay: float = 0.05
    transient: Callable[[BaseException], bool] = is_contention

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the failed try number ``attempt`` (0-based)."""
        return self.base_delay * 2**attempt

    async def run(
        self,
        work: Callable[[], Awaitable[T]],
        *,
        before_retry: Callable[[], Awaitable[None]] | None = None,
    ) -> T:
        """``await work()`` until it succeeds, the failure is not transient, or tries run out.

        ``before_retry`` runs after the backoff, before the next try: the place to load again
        what the failed try's rollback expired.
        """
        for attempt in range(self.attempts):
            try:
                return await work()
            except Exception as exc:
                if attempt + 1 >= self.attempts or not self.transient(exc):
                    raise
                log.warning("transient database failure, try %d again: %s", attempt + 2, exc)
            await asyncio.sleep(self.delay(attempt))
            if before_retry is not None:
                await before_retry()
        raise ValueError("a retry policy needs at least one attempt")


# Short writes that another writer may hold up for a moment (the care engine's batches).
CONTENTION = RetryPolicy()
# A single try: for work inside a transaction the caller owns (the dry run), where a retry
# would replay only part of it.
ONCE = RetryPolicy(attempts=1)
