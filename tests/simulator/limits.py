"""Telegram's rate limits and injected failures: what makes a call fail on purpose."""

from __future__ import annotations

from .base import SimulatorBase
from .state import (
    ApiError,
    FaultRule,
    RateLimiter,
)

_STATUS_TEXT = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    400: "Bad Request",
    403: "Forbidden",
    409: "Conflict",
}


class LimitsMixin(SimulatorBase):
    """Rate limits on or off, and the next calls answered with an error."""

    def enforce_limits(self, global_rate: int = 30, per_chat_rate: float = 1.0) -> None:
        self.limiter = RateLimiter(global_rate, per_chat_rate)

    def disable_limits(self) -> None:
        self.limiter = None

    def fail_next(
        self,
        method: str | None = "sendMessage",
        status: int = 502,
        count: int = 1,
        description: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``count`` calls of ``method`` (None = any) with an error."""
        if description is None:
            text = _STATUS_TEXT.get(status, "Error")
            description = "Too Many Requests: retry after 1" if status == 429 else text
        if status == 429 and retry_after is None:
            retry_after = 1
        self._faults.append(
            FaultRule(method.lower() if method else None, status, count, description, retry_after)
        )

    def _count_error(self, err: ApiError) -> None:
        if err.code == 429:
            self.stats.errors_429 += 1
        elif err.code == 403:
            self.stats.errors_403 += 1
        elif err.code == 400:
            self.stats.errors_400 += 1

    def _check_faults(self, method: str) -> None:
        for rule in self._faults:
            if rule.method is None or rule.method == method:
                rule.count -= 1
                if rule.count <= 0:
                    self._faults.remove(rule)
                self.stats.injected += 1
                params = {"retry_after": rule.retry_after} if rule.retry_after else None
                raise ApiError(rule.status, rule.description, params)
