"""The outbox: every message a member receives, except a direct reply, waits here first.

``enqueue`` is how the rest of carebot sends: care rules, staff answers, alerts and broadcasts
all write a row keyed by an idempotency key, and the delivery worker (``care.messaging.delivery``)
sends
it within Telegram's limits. The key is the promise that nobody gets the same thing twice: a
second ``enqueue`` with the same key is a quiet no-op, across overlapping scheduler runs and
restarts, enforced by a unique index on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.quiet_hours import next_allowed_time
from care.core.templates import visible_length, visible_text
from storage.enums import MessageKind, OutboxStatus
from storage.models import Member, OutboxMessage
from storage.repos.outbox import OutboxRepo

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
KEY_LIMIT = 160
BULK_CHUNK = 2000

_QUEUED = OutboxStatus.QUEUED.value


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One message for ``enqueue_many``: what ``enqueue`` takes, with the member flattened.

    ``timezone`` is the member's IANA zone for quiet hours (None: the shop's default).
    """

    key: str
    chat_id: int
    text: str
    kind: MessageKind
    member_id: int | None = None
    about_member_id: int | None = None
    timezone: str | None = None
    rule: str | None = None
    campaign_id: int | None = None
    photo: str | None = None
    media_kind: str | None = None
    reply_markup: dict[str, Any] | None = None
    not_before: datetime | None = None
    respect_quiet_hours: bool = True


def _check(key: str, text: str, photo: str | None) -> None:
    if not key or len(key) > KEY_LIMIT:
        raise ValueError(f"an outbox key needs 1..{KEY_LIMIT} characters, got {len(key)}")
    visible = visible_text(text)
    length = visible_length(text)
    if photo is not None:
        if length > CAPTION_LIMIT:
            raise ValueError(
                f"a photo caption shows {length} characters; Telegram allows {CAPTION_LIMIT}"
            )
        return
    if length > TEXT_LIMIT:
        raise ValueError(f"the message shows {length} characters; Telegram allows {TEXT_LIMIT}")
    if not visible.strip():
        raise ValueError("the message has no visible text")


def _due_at(
    config: CareConfig,
    now: datetime,
    *,
    kind: MessageKind,
    not_before: datetime | None,
    timezone: str | None,
    has_member: bool,
    respect_quiet_hours: bool,
) -> datetime:
    due = max(not_before, now) if not_before is not None else now
    # Alerts are for staff, who asked to be told at once; members sleep through the night.
    if respect_quiet_hours and has_member and kind != MessageKind.ALERT:
        due = next_allowed_time(
            due, timezone or config.default_timezone, config.quiet_start, config.quiet_end
        )
    return due


def _row(item: OutboxItem, due: datetime, now: datetime) -> dict[str, Any]:
    return {
        "idempotency_key": item.key,
        "member_id": item.member_id,
        "about_member_id": item.about_member_id,
        "chat_id": item.chat_id,
        "kind": str(item.kind),
        "rule": item.rule,
        "campaign_id": item.campaign_id,
        "text": item.text,
        "photo": item.photo,
        "media_kind": item.media_kind,
        "reply_markup": item.reply_markup,
        "status": _QUEUED,
        "attempts": 0,
        "not_before": due,
        "created_at": now,
    }


async def enqueue(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    *,
    key: str,
    chat_id: int,
    text: str,
    kind: MessageKind,
    member: Member | None = None,
    about_member_id: int | None = None,
    rule: str | None = None,
    campaign_id: int | None = None,
    photo: str | None = None,
    media_kind: str | None = None,
    reply_markup: dict[str, Any] | None = None,
    not_before: datetime | None = None,
    respect_quiet_hours: bool = True,
) -> OutboxMessage | None:
    """Queue one message for delivery; None when ``key`` was queued before.

    ``text`` is Telegram HTML (the caption when ``photo`` is set). ``photo`` is a Telegram file
    id, sent as a photo unless ``media_kind`` names another kind (video, voice, document,
    sticker …; a sticker or video note goes without the text). Marketing and service
    messages to a member are deferred out of the member's local quiet hours when
    ``respect_quiet_hours``; alerts never are. Raises ValueError for a text Telegram would
    refuse (over 4096 visible characters, 1024 for a caption, or nothing visible). Flushes,
    does not commit: the caller's unit of work decides. ``about_member_id`` names the member a
    message to someone else quotes (a staff alert), so that erasing them deletes it too.
    """
    _check(key, text, photo)
    if member is not None and member.id is None:
        await session.flush()
    now = clock.now()
    item = OutboxItem(
        key=key,
        chat_id=chat_id,
        text=text,
        kind=kind,
        member_id=member.id if member is not None else None,
        about_member_id=about_member_id,
        timezone=member.timezone if member is not None else None,
        rule=rule,
        campaign_id=campaign_id,
        photo=photo,
        media_kind=media_kind,
        reply_markup=reply_markup,
        not_before=not_before,
        respect_quiet_hours=respect_quiet_hours,
    )
    due = _due_at(
        config,
        now,
        kind=kind,
        not_before=not_before,
        timezone=item.timezone,
        has_member=member is not None,
        respect_quiet_hours=respect_quiet_hours,
    )
    return await OutboxRepo(session).add_if_new(_row(item, due, now))


def _chunks(items: Iterable[OutboxItem], size: int) -> Iterator[list[OutboxItem]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


async def enqueue_many(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    items: Iterable[OutboxItem],
) -> int:
    """Queue many messages at once (a broadcast); returns how many were new.

    Items whose key exists already are skipped, exactly as ``enqueue`` would. ``items`` may be a
    generator: it is consumed in chunks, so memory stays flat for a million rows. Every item is
    validated like ``enqueue`` before anything of its chunk is written. Flushes, does not commit.
    """
    repo = OutboxRepo(session)
    now = clock.now()
    due_cache: dict[tuple[str | None, datetime | None, str, bool, bool], datetime] = {}
    added = 0
    for chunk in _chunks(items, BULK_CHUNK):
        rows = []
        for item in chunk:
            _check(item.key, item.text, item.photo)
            has_member = item.member_id is not None
            cache_key = (
                item.timezone,
                item.not_before,
                str(item.kind),
                has_member,
                item.respect_quiet_hours,
            )
            due = due_cache.get(cache_key)
            if due is None:
                due = _due_at(
                    config,
                    now,
                    kind=item.kind,
                    not_before=item.not_before,
                    timezone=item.timezone,
                    has_member=has_member,
                    respect_quiet_hours=item.respect_quiet_hours,
                )
                if len(due_cache) < 4096:
                    due_cache[cache_key] = due
            rows.append(_row(item, due, now))
        added += await repo.add_many_if_new(rows)
    return added


async def campaign_counts(session: AsyncSession, campaign_id: int) -> dict[str, int]:
    """Delivery state of a broadcast: how many rows are queued, sending, sent, failed, skipped."""
    return await OutboxRepo(session).status_counts(campaign_id)


async def campaign_skip_reasons(session: AsyncSession, campaign_id: int) -> dict[str, int]:
    """Why a broadcast's skipped messages were skipped: reason → count."""
    return await OutboxRepo(session).skip_reason_counts(campaign_id)


async def outbox_depth(session: AsyncSession) -> dict[tuple[str, str], int]:
    """Messages queued, being sent or failed, by (status, kind): what ``/metrics`` reports."""
    return await OutboxRepo(session).depth()
