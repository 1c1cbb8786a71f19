"""The guardrails every marketing message passes, from a care rule or a staff broadcast.

Marketing reaches a member only when all of these hold: the member exists and can be reached,
has given marketing consent, has no unresolved complaint or unanswered low score (service
recovery comes first), and has had fewer than ``config.marketing_cap`` marketing messages in the
last ``config.marketing_cap_days`` days (a cap of 0 turns the cap off). Quiet hours are not a
block: the outbox defers a message out of them.

The checks are set-based: ``marketing_blocks`` answers for a whole batch of members with four
indexed queries, and ``marketing_block_reason`` is the same answer for one member.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.config import CareConfig
from storage.enums import MemberStatus, MessageKind, OutboxStatus, TicketKind, TicketStatus
from storage.models import Member, OutboxMessage, SurveyResponse, Ticket

NO_CONSENT = "no_consent"
UNREACHABLE = "unreachable"
DELETED = "deleted"
FREQUENCY_CAP = "frequency_cap"
SERVICE_RECOVERY = "service_recovery"

# Messages that never reached the member do not use up their allowance.
_NOT_DELIVERED = (OutboxStatus.SKIPPED.value, OutboxStatus.FAILED.value)
_ID_CHUNK = 500


def _own_block(member: Member) -> str | None:
    if member.deleted_at is not None or member.status == MemberStatus.DELETED:
        return DELETED
    if member.blocked_at is not None or member.chat_id is None:
        return UNREACHABLE
    if not member.marketing_opt_in:
        return NO_CONSENT
    return None


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _ID_CHUNK):
        yield ids[start : start + _ID_CHUNK]


async def members_in_service_recovery(session: AsyncSession, member_ids: list[int]) -> set[int]:
    """Of ``member_ids``, those with an open complaint or a low score not yet followed up."""
    found: set[int] = set()
    for chunk in _chunks(member_ids):
        complaints = select(Ticket.member_id).where(
            Ticket.member_id.in_(chunk),
            Ticket.kind == TicketKind.COMPLAINT,
            Ticket.status != TicketStatus.CLOSED,
        )
        low_scores = select(SurveyResponse.member_id).where(
            SurveyResponse.member_id.in_(chunk),
            SurveyResponse.needs_followup.is_(True),
            SurveyResponse.followed_up_at.is_(None),
        )
        found.update((await session.scalars(complaints.union(low_scores))).all())
    return found


async def marketing_counts(
    session: AsyncSession, config: CareConfig, clock: Clock, member_ids: list[int]
) -> dict[int, int]:
    """Marketing messages queued or sent to each member within the cap window."""
    since = clock.now() - timedelta(days=config.marketing_cap_days)
    counts: dict[int, int] = {}
    for chunk in _chunks(member_ids):
        query = (
            select(OutboxMessage.member_id, func.count())
            .where(
                OutboxMessage.member_id.in_(chunk),
                OutboxMessage.kind == MessageKind.MARKETING,
                OutboxMessage.created_at >= since,
                OutboxMessage.status.not_in(_NOT_DELIVERED),
            )
            .group_by(OutboxMessage.member_id)
        )
        for member_id, count in await session.execute(query):
            if member_id is not None:
                counts[member_id] = count
    return counts


async def marketing_blocks(
    session: AsyncSession, config: CareConfig, clock: Clock, members: Iterable[Member]
) -> dict[int, str]:
    """For a batch of members: member id → why marketing may not go to them now.

    Members missing from the answer may receive marketing.
    """
    blocks: dict[int, str] = {}
    open_ids: list[int] = []
    for member in members:
        reason = _own_block(member)
        if reason:
            blocks[member.id] = reason
        else:
            open_ids.append(member.id)
    if not open_ids:
        return blocks
    for member_id in await members_in_service_recovery(session, open_ids):
        blocks[member_id] = SERVICE_RECOVERY
    if config.marketing_cap > 0:
        counts = await marketing_counts(session, config, clock, open_ids)
        for member_id, count in counts.items():
            if count >= config.marketing_cap:
                blocks.setdefault(member_id, FREQUENCY_CAP)
    return blocks


async def marketing_block_reason(
    session: AsyncSession, config: CareConfig, clock: Clock, member: Member
) -> str | None:
    """None if marketing may go to ``member`` now; else why not.

    One of ``"deleted"``, ``"unreachable"``, ``"no_consent"``, ``"service_recovery"``,
    ``"frequency_cap"`` (checked in that order).
    """
    return (await marketing_blocks(session, config, clock, [member])).get(member.id)


def holdout_bucket(rule: str, member_id: int) -> int:
    """A stable bucket 0..99 for (rule, member): the same on every run, host and Python."""
    digest = hashlib.sha256(f"{rule}:{member_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def in_holdout(rule: str, member_id: int, pct: int) -> bool:
    """Whether ``member_id`` is in ``rule``'s holdout group of ``pct`` percent.

    Deterministic per (rule, member), independent across rules, so the same member is not held
    out of everything and each rule's comparison group is a fair random sample.
    """
    return holdout_bucket(rule, member_id) < max(0, min(pct, 100))
