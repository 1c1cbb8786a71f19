"""What the delivery worker handles: a claimed row, the result of sending it, its counters,
and the sizing and backoff rules they follow."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiogram.types import (
    ForceReply,
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from aiohttp import ClientConnectorError, ConnectionTimeoutError

from storage.enums import OutboxStatus

INTERRUPTED = "interrupted: the worker stopped mid-send; not resent to avoid a duplicate"
UNAUTHORIZED_BACKOFF = timedelta(minutes=1)
MAX_BACKOFF = timedelta(minutes=10)
ERROR_LIMIT = 255
RECOVERY_EVERY = 30.0  # seconds between looks for a dead worker's rows
# Network failures that happen before the request could reach Telegram: safe to retry.
NEVER_SENT = (ClientConnectorError, ConnectionTimeoutError)

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | ForceReply


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
class Claimed:
    id: int
    member_id: int | None
    chat_id: int
    kind: str
    text: str
    photo: str | None  # a file id: a photo, or the attachment of kind ``media_kind``
    media_kind: str | None
    reply_markup: dict[str, Any] | None
    attempts: int


@dataclass(slots=True)
class Result:
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
