"""Sending one outbox row to Telegram and mapping every answer onto the row's next state."""

from __future__ import annotations

import logging
from datetime import timedelta
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
from aiogram.types import Message
from pydantic import ValidationError

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.metrics import SENDS
from care.messaging.delivery.results import (
    NEVER_SENT,
    UNAUTHORIZED_BACKOFF,
    Claimed,
    DeliveryStats,
    Result,
    backoff,
    reply_markup_from,
)
from care.messaging.delivery.wire import LeanWire, usable
from care.messaging.ratelimit import SendLimiter
from storage.enums import OutboxStatus

log = logging.getLogger(__name__)


class Sender:
    """One Bot API call per row; a 429 pauses the shared limiter."""

    def __init__(
        self,
        bot: Bot,
        config: CareConfig,
        clock: Clock,
        limiter: SendLimiter,
        stats: DeliveryStats,
        request_timeout: int,
    ) -> None:
        self.bot = bot
        self.config = config
        self.clock = clock
        self.limiter = limiter
        self.stats = stats
        self.request_timeout = request_timeout
        self._wire: LeanWire | None = None
        self._wire_for: object = None

    def _lean(self) -> LeanWire | None:
        """The lean path (``wire``) while the bot's session allows it, else None."""
        if not usable(self.bot):
            return None
        if self._wire is None or self._wire_for is not self.bot.session:
            self._wire = LeanWire(self.bot, ParseMode.HTML, self.request_timeout)
            self._wire_for = self.bot.session
        return self._wire

    async def send(self, row: Claimed) -> Result:
        """Send one row and say what became of it; never raises for a Telegram answer."""
        result, label = await self._send(row)
        SENDS.labels(label).inc()
        return result

    async def _send(self, row: Claimed) -> tuple[Result, str]:
        try:
            message_id = await self._call(row)
        except TelegramRetryAfter as exc:
            paused = self.limiter.pause(exc.retry_after)
            self.stats.rate_limited += 1
            log.warning("Telegram asked to slow down: pausing %.0fs", paused)
            return Result(
                row.id,
                OutboxStatus.QUEUED,
                error=exc.message,
                not_before=self.clock.now() + timedelta(seconds=exc.retry_after),
                attempted=False,
            ), "429"
        except TelegramForbiddenError as exc:
            if row.member_id is None:
                return Result(row.id, OutboxStatus.FAILED, error=exc.message), "403"
            return Result(
                row.id,
                OutboxStatus.SKIPPED,
                skip_reason="unreachable",
                error=exc.message,
                unreachable_member=row.member_id,
            ), "403"
        except TelegramMigrateToChat as exc:
            # A group became a supergroup: same conversation, new id.
            return Result(
                row.id,
                OutboxStatus.QUEUED,
                error=exc.message,
                chat_id=exc.migrate_to_chat_id,
                not_before=self.clock.now(),
                attempted=False,
            ), "migrated"
        except TelegramBadRequest as exc:
            return Result(row.id, OutboxStatus.FAILED, error=exc.message), "400"
        except TelegramUnauthorizedError as exc:
            # The token is wrong for every message alike: keep them all for when it is fixed.
            log.error("the Bot API refused the token: %s", exc.message)
            return Result(
                row.id,
                OutboxStatus.QUEUED,
                error=exc.message,
                not_before=self.clock.now() + UNAUTHORIZED_BACKOFF,
                attempted=False,
            ), "401"
        except TelegramServerError as exc:
            return self._retry_later(row, exc.message), "5xx"
        except TelegramNetworkError as exc:
            if isinstance(exc.__cause__, NEVER_SENT):
                return self._retry_later(row, exc.message), "network"
            # The request may have reached Telegram before the answer was lost.
            uncertain = Result(row.id, OutboxStatus.FAILED, error=f"uncertain: {exc.message}")
            return uncertain, "network"
        except TelegramAPIError as exc:
            return Result(row.id, OutboxStatus.FAILED, error=exc.message), "api_error"
        except (ValidationError, ValueError, TypeError) as exc:
            log.warning("outbox row %s cannot be sent: %s", row.id, exc)
            return Result(row.id, OutboxStatus.FAILED, error=f"invalid message: {exc}"), "invalid"
        sent = Result(row.id, OutboxStatus.SENT, message_id=message_id, sent_at=self.clock.now())
        return sent, "sent"

    async def _call(self, row: Claimed) -> int:
        """Send ``row``; the new message's id."""
        markup = reply_markup_from(row.reply_markup)
        if row.photo and row.media_kind and row.media_kind != "photo":
            return (await self._send_media(row, markup)).message_id
        lean = self._lean()
        if lean is not None:
            if row.photo:
                return await lean.photo.call(
                    chat_id=row.chat_id,
                    photo=row.photo,
                    caption=row.text or None,
                    reply_markup=markup,
                )
            return await lean.message.call(chat_id=row.chat_id, text=row.text, reply_markup=markup)
        if row.photo:
            sent = await self.bot.send_photo(
                row.chat_id,
                row.photo,
                caption=row.text or None,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                request_timeout=self.request_timeout,
            )
            return sent.message_id
        sent = await self.bot.send_message(
            row.chat_id,
            row.text,
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
            request_timeout=self.request_timeout,
        )
        return sent.message_id

    async def _send_media(self, row: Claimed, markup: Any) -> Message:
        """A staff answer's attachment other than a photo, by its file id."""
        assert row.photo is not None
        common: dict[str, Any] = {"reply_markup": markup, "request_timeout": self.request_timeout}
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

    def _retry_later(self, row: Claimed, error: str) -> Result:
        attempt = row.attempts + 1
        if attempt >= self.config.max_attempts:
            return Result(
                row.id, OutboxStatus.FAILED, error=f"gave up after {attempt} attempts: {error}"
            )
        return Result(
            row.id,
            OutboxStatus.QUEUED,
            error=error,
            not_before=self.clock.now() + backoff(attempt),
        )
