"""Plain data kept by the simulator: messages, chats, counters and rate limiting."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any


class ApiError(Exception):
    """An error answered to the bot as ``{"ok": false, ...}``."""

    def __init__(
        self, code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(text: str) -> ApiError:
    return ApiError(400, f"Bad Request: {text}")


@dataclass
class SimMessage:
    """One message in a chat, sent by the bot (``from_bot``) or by a simulated user."""

    message_id: int
    chat_id: int
    date: int
    payload: dict[str, Any]
    from_bot: bool = True
    method: str = ""
    text: str | None = None
    html: str | None = None
    caption: str | None = None
    parse_mode: str | None = None
    photo: bytes | None = None
    document: tuple[str, bytes] | None = None
    reply_markup: dict[str, Any] | None = None
    message_thread_id: int | None = None
    edited: int = 0
    deleted: bool = False
    seq: int = 0

    @property
    def content(self) -> str:
        """Visible text or caption ("" when neither)."""
        return self.text if self.text is not None else (self.caption or "")

    @property
    def inline_buttons(self) -> list[list[str]]:
        markup = self.reply_markup or {}
        return [[b["text"] for b in row] for row in markup.get("inline_keyboard", [])]

    @property
    def reply_buttons(self) -> list[list[str]]:
        markup = self.reply_markup or {}
        return [
            [b if isinstance(b, str) else b["text"] for b in row]
            for row in markup.get("keyboard", [])
        ]

    def inline_button(self, label: str) -> dict[str, Any] | None:
        wanted = label.strip()
        for row in (self.reply_markup or {}).get("inline_keyboard", []):
            for button in row:
                if button.get("text", "").strip() == wanted:
                    return button
        return None

    def __repr__(self) -> str:
        kind = "photo" if self.photo is not None else "doc" if self.document else "msg"
        return f"<SimMessage {kind} #{self.message_id} chat={self.chat_id} {self.content!r}>"


@dataclass
class SimTopic:
    message_thread_id: int
    name: str
    icon_color: int
    closed: bool = False


class ChatState:
    """Everything the simulator knows about one chat."""

    __slots__ = (
        "_event",
        "by_id",
        "id",
        "is_forum",
        "members",
        "messages",
        "next_id",
        "payload",
        "reply_keyboard",
        "seq",
        "topics",
        "type",
    )

    def __init__(self, chat_id: int, payload: dict[str, Any]) -> None:
        self.id = chat_id
        self.payload = payload
        self.type: str = payload["type"]
        self.is_forum: bool = bool(payload.get("is_forum"))
        self.messages: list[SimMessage] = []
        self.by_id: dict[int, SimMessage] = {}
        self.next_id = 1
        self.seq = 0
        self.topics: dict[int, SimTopic] = {}
        self.members: dict[int, str] = {}
        self.reply_keyboard: SimMessage | None = None
        self._event: asyncio.Event | None = None

    def take_id(self) -> int:
        message_id = self.next_id
        self.next_id += 1
        return message_id

    def bump(self) -> int:
        self.seq += 1
        return self.seq

    def notify(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait_change(self, seconds: float) -> None:
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)


@dataclass
class Stats:
    requests: int = 0
    sent: int = 0
    edited: int = 0
    deleted: int = 0
    errors_400: int = 0
    errors_401: int = 0
    errors_403: int = 0
    errors_404: int = 0
    errors_429: int = 0
    injected: int = 0
    updates_queued: int = 0
    updates_delivered: int = 0
    per_method: Counter[str] = field(default_factory=Counter)
    sent_per_method: Counter[str] = field(default_factory=Counter)
    sent_per_second: Counter[int] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        per_second = self.sent_per_second
        return {
            "requests": self.requests,
            "sent": self.sent,
            "edited": self.edited,
            "deleted": self.deleted,
            "errors_400": self.errors_400,
            "errors_401": self.errors_401,
            "errors_403": self.errors_403,
            "errors_404": self.errors_404,
            "errors_429": self.errors_429,
            "injected": self.injected,
            "updates_queued": self.updates_queued,
            "updates_delivered": self.updates_delivered,
            "per_method": dict(self.per_method),
            "sent_per_method": dict(self.sent_per_method),
            "max_sent_per_second": max(per_second.values(), default=0),
            "sent_per_second": {str(k): v for k, v in sorted(per_second.items())},
        }


@dataclass(frozen=True)
class SentRecord:
    timestamp: float  # time.monotonic()
    chat_id: int
    method: str


@dataclass
class CallbackAnswer:
    callback_id: str
    text: str | None
    show_alert: bool
    url: str | None


@dataclass
class FaultRule:
    method: str | None  # lower-cased, None = any method
    status: int
    count: int
    description: str
    retry_after: int | None = None


class RateLimiter:
    """Telegram-like flood control: a global sliding window plus a per-chat interval."""

    JITTER = 0.02

    def __init__(self, global_rate: int, per_chat_rate: float) -> None:
        self.global_rate = global_rate
        self.per_chat_rate = per_chat_rate
        self.window: deque[float] = deque()
        self.last_sent: dict[int, float] = {}

    def check(self, chat_id: int, now: float | None = None) -> None:
        """Raise a 429 ApiError if sending to ``chat_id`` now would break a limit."""
        now = time.monotonic() if now is None else now
        if self.per_chat_rate > 0:
            last = self.last_sent.get(chat_id)
            interval = 1.0 / self.per_chat_rate
            if last is not None and now - last < interval - self.JITTER:
                raise too_many_requests(last + interval - now)
        if self.global_rate > 0:
            window = self.window
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= self.global_rate:
                raise too_many_requests(window[0] + 1.0 - now)

    def record(self, chat_id: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.window.append(now)
        self.last_sent[chat_id] = now


def too_many_requests(wait: float) -> ApiError:
    retry_after = max(1, math.ceil(wait))
    return ApiError(
        429,
        f"Too Many Requests: retry after {retry_after}",
        {"retry_after": retry_after},
    )
