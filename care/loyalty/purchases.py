"""Purchases: recording a receipt, and what it does to points, aggregates, tier and stage.

Points are earned per whole currency unit spent, times the member's tier multiplier (the tier
they held when they paid). A purchase upgrades the tier at once (``care.loyalty.tiers``); the
segment refresh downgrades when old spend rolls out of the 12-month window. Recording is
idempotent on the receipt id. Every new purchase queues the shopper's receipt message
(``care.loyalty.receipts``: fresh purchases only, never an imported history).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from uuid import uuid4

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.money import minor_digits
from care.loyalty.points import add_points
from care.loyalty.receipts import send_receipt, sends_receipt
from care.loyalty.tiers import tier_for_spend
from care.segments.rules import StageFacts, lifecycle_stage
from storage.enums import MemberStatus, PointsReason
from storage.models import Member, Tier
from storage.repos.loyalty import TierRepo
from storage.repos.purchases import PurchaseRepo

MIN_AMOUNT_MINOR = 1
MAX_AMOUNT_MINOR = 100_000_000
SPEND_WINDOW = timedelta(days=365)
RECEIPT_ID_MAX = 64


class PurchaseError(Exception):
    """A purchase that cannot be recorded; ``reason`` says why, for the caller to word."""

    def __init__(self, reason: Literal["bad_amount", "unknown_member", "member_deleted"]) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PurchaseResult:
    purchase_id: int
    duplicate: bool
    points_earned: int
    points_balance: int
    tier_code: str
    previous_tier_code: str
    first_purchase: bool

    @property
    def upgraded(self) -> bool:
        return self.tier_code != self.previous_tier_code


def points_for(amount_minor: int, currency: str, points_per_unit: int, multiplier_pct: int) -> int:
    """Points for a purchase: whole currency units × points per unit × the tier multiplier."""
    whole_units = amount_minor // 10 ** minor_digits(currency)
    return whole_units * points_per_unit * multiplier_pct // 100


async def record_purchase(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    *,
    member_id: int,
    amount_minor: int,
    receipt_id: str | None = None,
    category: str | None = None,
    purchased_at: datetime | None = None,
    source: str = "till",
    recorded_by: int | None = None,
) -> PurchaseResult:
    """Record one receipt for a member: points, ledger, aggregates, tier, care conversions.

    Idempotent on ``receipt_id``: a receipt seen before (even one being recorded by another
    till at this very moment) returns ``duplicate=True`` and changes nothing. Raises
    ``PurchaseError`` for an amount outside 1..100,000,000 minor units or an unknown or deleted
    member.
    """
    if (
        isinstance(amount_minor, bool)
        or not isinstance(amount_minor, int)
        or not MIN_AMOUNT_MINOR <= amount_minor <= MAX_AMOUNT_MINOR
    ):
        raise PurchaseError("bad_amount")
    now = clock.now()
    when = purchased_at or now
    if when.tzinfo is None:
        raise ValueError("purchased_at must be timezone-aware")
    member = await session.get(Member, member_id)
    if member is None:
        raise PurchaseError("unknown_member")
    if member.deleted_at is not None or member.status == MemberStatus.DELETED:
        raise PurchaseError("member_deleted")

    purchases = PurchaseRepo(session)
    receipt = _receipt_key(receipt_id) or f"{source[:8]}-{uuid4().hex}"
    purchase_id = await purchases.insert_new(
        {
            "member_id": member_id,
            "receipt_id": receipt,
            "amount_minor": amount_minor,
            "currency": config.currency,
            "category": (category or "").strip()[:32] or None,
            "purchased_at": when,
            "points_earned": 0,
            "source": source[:16],
            "recorded_by": recorded_by,
            "created_at": now,
        }
    )
    if purchase_id is None:
        return await _duplicate_result(session, receipt, member)

    # The insert above holds the write lock (SQLite); FOR NO KEY UPDATE locks the row (Postgres;
    # not FOR UPDATE, which would deadlock with the key-share lock the purchase FK takes):
    # the aggregates are read and written by one till at a time.
    member = await session.scalar(
        select(Member)
        .where(Member.id == member_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    assert member is not None
    tiers = await TierRepo(session).all()
    booked = book_into_member(member, tiers, config, amount_minor, when, now)
    points, previous_tier_code = booked.points, booked.previous_tier_code
    first_purchase = booked.first_purchase
    purchase = await purchases.get(purchase_id)
    assert purchase is not None
    purchase.points_earned = points
    await session.flush()
    balance = member.points_balance
    if points > 0:
        balance = await add_points(
            session, clock, member_id=member_id, delta=points,
            reason=PointsReason.PURCHASE, purchase_id=purchase_id,
        )  # fmt: skip
    await purchases.mark_touches_converted(
        member_id, when, when - timedelta(days=config.conversion_days)
    )
    if sends_receipt(source, when, now):
        await send_receipt(
            session, config, clock, member=member, purchase_id=purchase_id,
            amount_minor=amount_minor, points_earned=points, balance=balance,
        )  # fmt: skip
    return PurchaseResult(
        purchase_id=purchase_id,
        duplicate=False,
        points_earned=points,
        points_balance=balance,
        tier_code=member.tier_code,
        previous_tier_code=previous_tier_code,
        first_purchase=first_purchase,
    )


@dataclass(frozen=True, slots=True)
class Booked:
    """What one purchase did to its member's row (``book_into_member``)."""

    points: int
    previous_tier_code: str
    first_purchase: bool


def book_into_member(
    member: Member,
    tiers: Sequence[Tier],
    config: CareConfig,
    amount_minor: int,
    when: datetime,
    now: datetime,
) -> Booked:
    """Fold one purchase into the member's row: aggregates, an immediate tier upgrade, the
    lifecycle stage (stamped when it changes). Returns the points it earns, at the multiplier of
    the tier the member held when they paid; the caller moves the balance and writes the ledger.

    The one truth for a till purchase and for each line of a batched import.
    """
    current = next((tier for tier in tiers if tier.code == member.tier_code), tiers[0])
    first_purchase = member.purchase_count == 0
    _add_to_aggregates(member, amount_minor, when, now)
    previous_tier_code = member.tier_code
    reached = tier_for_spend(list(tiers), member.spend_12m_minor)
    if reached.rank > current.rank:
        member.tier_code = reached.code
        member.tier_changed_at = now
    stage = lifecycle_stage(StageFacts.of(member), now, config, config.fallback_gap_days)
    if stage != member.lifecycle_stage:
        member.lifecycle_stage = stage
        member.stage_changed_at = now
    member.updated_at = now
    points = points_for(
        amount_minor, config.currency, config.points_per_unit, current.points_multiplier_pct
    )
    return Booked(points, previous_tier_code, first_purchase)


def stored_receipt(receipt_id: str | None) -> str | None:
    """The receipt id as the purchases table keeps it (to find a purchase by what was typed)."""
    return _receipt_key(receipt_id)


def _receipt_key(receipt_id: str | None) -> str | None:
    """The stored receipt id: as given, or a digest when longer than the column.

    Cutting a long id short could make two different receipts look like one (and lose a
    purchase as a "duplicate"); a digest keeps them apart and stays the same on a replay.
    """
    receipt = (receipt_id or "").strip()
    if len(receipt) <= RECEIPT_ID_MAX:
        return receipt or None
    return "sha256:" + hashlib.sha256(receipt.encode()).hexdigest()[: RECEIPT_ID_MAX - 7]


def _add_to_aggregates(member: Member, amount_minor: int, when: datetime, now: datetime) -> None:
    """Fold one purchase into the member's aggregates, whatever order purchases arrive in.

    The average gap is (last − first) / (count − 1): exact from the aggregates alone.
    """
    member.purchase_count = (member.purchase_count or 0) + 1
    member.total_spent_minor = (member.total_spent_minor or 0) + amount_minor
    if when >= now - SPEND_WINDOW:
        member.spend_12m_minor = (member.spend_12m_minor or 0) + amount_minor
    if member.first_purchase_at is None or when < member.first_purchase_at:
        member.first_purchase_at = when
    if member.last_purchase_at is None or when > member.last_purchase_at:
        member.last_purchase_at = when
    if member.purchase_count >= 2:
        span = member.last_purchase_at - member.first_purchase_at
        member.avg_gap_days = span.total_seconds() / 86_400 / (member.purchase_count - 1)


async def _duplicate_result(session: AsyncSession, receipt: str, member: Member) -> PurchaseResult:
    existing = await PurchaseRepo(session).by_receipt(receipt)
    assert existing is not None, "the receipt's row vanished between insert and read"
    await session.refresh(member, ["points_balance", "tier_code"])
    return PurchaseResult(
        purchase_id=existing.id,
        duplicate=True,
        points_earned=existing.points_earned,
        points_balance=member.points_balance,
        tier_code=member.tier_code,
        previous_tier_code=member.tier_code,
        first_purchase=False,
    )
