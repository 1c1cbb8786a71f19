"""Loyalty: purchases, points, tiers, offers and coupons.

Points are earned per whole currency unit spent, times the member's tier multiplier (the tier
they held when they paid). Tiers follow the spend of the last 12 months: a purchase upgrades at
once; the segment refresh also downgrades when old spend rolls out of the window. The points
ledger is append-only and chained by ``balance_after``, so its sum is always the balance.
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
from care.core.codes import display_code, normalize_code, random_code
from care.core.config import CareConfig
from care.core.i18n import Translator
from care.core.money import format_money, minor_digits
from care.segments.rules import StageFacts, lifecycle_stage
from storage.enums import MemberStatus, OfferKind, PointsReason
from storage.models import Coupon, Member, Offer, PointsEntry, Tier
from storage.repos.loyalty import CouponRepo, OfferRepo, PointsRepo, TierRepo
from storage.repos.purchases import PurchaseRepo

MIN_AMOUNT_MINOR = 1
MAX_AMOUNT_MINOR = 100_000_000
SPEND_WINDOW = timedelta(days=365)
MAX_CODE_ATTEMPTS = 8
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


@dataclass(frozen=True, slots=True)
class TierProgress:
    current: Tier
    next: Tier | None
    spend_12m_minor: int
    remaining_minor: int


@dataclass(frozen=True, slots=True)
class RedeemResult:
    status: Literal["redeemed", "not_found", "expired", "already_used"]
    coupon: Coupon | None


# ---------------------------------------------------------------------------------------------
# Purchases and points


def points_for(amount_minor: int, currency: str, points_per_unit: int, multiplier_pct: int) -> int:
    """Points for a purchase: whole currency units × points per unit × the tier multiplier."""
    whole_units = amount_minor // 10 ** minor_digits(currency)
    return whole_units * points_per_unit * multiplier_pct // 100


def tier_for_spend(tiers: list[Tier], spend_12m_minor: int) -> Tier:
    """The highest tier whose threshold the 12-month spend reaches (``tiers`` by rank)."""
    reached = [tier for tier in tiers if tier.min_spend_12m_minor <= spend_12m_minor]
    return reached[-1] if reached else tiers[0]


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
    current = next((tier for tier in tiers if tier.code == member.tier_code), tiers[0])
    first_purchase = member.purchase_count == 0

    _add_to_aggregates(member, amount_minor, when, now)
    previous_tier_code = member.tier_code
    reached = tier_for_spend(tiers, member.spend_12m_minor)
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
    return PurchaseResult(
        purchase_id=purchase_id,
        duplicate=False,
        points_earned=points,
        points_balance=balance,
        tier_code=member.tier_code,
        previous_tier_code=previous_tier_code,
        first_purchase=first_purchase,
    )


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


async def add_points(
    session: AsyncSession,
    clock: Clock,
    *,
    member_id: int,
    delta: int,
    reason: PointsReason,
    note: str | None = None,
    purchase_id: int | None = None,
) -> int:
    """Move a member's points by ``delta`` and write the ledger entry; returns the new balance.

    Raises ``ValueError`` for a zero delta, an unknown member, or a balance that would go
    below zero (nothing changes then).
    """
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
        raise ValueError("a points movement needs a non-zero whole number")
    balance = await PointsRepo(session).move_balance(member_id, delta)
    if balance is None:
        if await session.get(Member, member_id) is None:
            raise ValueError(f"no member {member_id}")
        raise ValueError("not enough points")
    await PointsRepo(session).add_entry(
        PointsEntry(
            member_id=member_id,
            delta=delta,
            balance_after=balance,
            reason=str(reason),
            purchase_id=purchase_id,
            note=note[:200] if note else None,
            created_at=clock.now(),
        )
    )
    return int(balance)


async def points_history(
    session: AsyncSession, member_id: int, limit: int = 10
) -> list[PointsEntry]:
    """The member's latest ledger entries, newest first."""
    return await PointsRepo(session).history(member_id, limit)


async def list_tiers(session: AsyncSession) -> list[Tier]:
    """Every tier, lowest first."""
    return await TierRepo(session).all()


async def tier_progress(session: AsyncSession, member: Member) -> TierProgress:
    """Where the member stands: their tier, the next one, and the spend still needed for it."""
    tiers = await TierRepo(session).all()
    current = next((tier for tier in tiers if tier.code == member.tier_code), tiers[0])
    higher = [tier for tier in tiers if tier.rank > current.rank]
    upcoming = higher[0] if higher else None
    spend = member.spend_12m_minor or 0
    remaining = max(0, upcoming.min_spend_12m_minor - spend) if upcoming else 0
    return TierProgress(
        current=current, next=upcoming, spend_12m_minor=spend, remaining_minor=remaining
    )


def tier_name(tier: Tier, locale: str) -> str:
    return tier.name_zh if locale == "zh" else tier.name_en


def reason_label(reason: str, t: Translator) -> str:
    """A ledger reason in the reader's language."""
    key = f"loyalty.reason.{reason}"
    return t(key) if t.has(key) else reason


# ---------------------------------------------------------------------------------------------
# Offers and coupons

# Built-in offers of the care rules: kind, value (percent, whole currency units or points),
# minimum spend in whole units, days a coupon stays valid.
RULE_OFFERS: dict[str, tuple[str, OfferKind, int, int, int]] = {
    "welcome": ("Welcome: 10% off", OfferKind.PERCENT_OFF, 10, 0, 30),
    "birthday": ("Birthday: 20 off over 100", OfferKind.AMOUNT_OFF, 20, 100, 30),
    "winback": ("We miss you: 15% off", OfferKind.PERCENT_OFF, 15, 0, 21),
    "last_chance": ("Last chance: 30 off over 150", OfferKind.AMOUNT_OFF, 30, 150, 14),
    "referral": ("Referral thanks: 200 points", OfferKind.POINTS, 200, 0, 60),
    "anniversary": ("Anniversary gift", OfferKind.GIFT, 0, 0, 30),
}


def _validate_offer(kind: OfferKind, value: int, min_spend_minor: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("an offer's value is a whole number")
    if kind == OfferKind.PERCENT_OFF and not 1 <= value <= 100:
        raise ValueError("a percentage off is between 1 and 100")
    if kind in (OfferKind.AMOUNT_OFF, OfferKind.POINTS) and not 1 <= value <= MAX_AMOUNT_MINOR:
        raise ValueError("an amount or a number of points must be positive")
    if kind == OfferKind.GIFT and value < 0:
        raise ValueError("a gift has no negative value")
    if not 0 <= min_spend_minor <= MAX_AMOUNT_MINOR:
        raise ValueError("the minimum spend is out of range")


async def rule_offer(session: AsyncSession, clock: Clock, config: CareConfig, key: str) -> Offer:
    """The built-in offer of a care rule, created with sensible defaults on first use.

    Staff may change it afterwards (the row is found by its key); it is never recreated.
    """
    repo = OfferRepo(session)
    offer = await repo.by_key(key)
    if offer is not None:
        return offer
    if key not in RULE_OFFERS:
        raise KeyError(f"no built-in offer {key!r}")
    title, kind, value, min_spend_units, days = RULE_OFFERS[key]
    unit = 10 ** minor_digits(config.currency)
    if kind == OfferKind.AMOUNT_OFF:
        value *= unit
    await repo.insert_keyed(
        {
            "key": key,
            "title": title,
            "kind": str(kind),
            "value": value,
            "currency": config.currency,
            "min_spend_minor": min_spend_units * unit,
            "coupon_valid_days": days,
            "is_active": True,
            "created_at": clock.now(),
        }
    )
    offer = await repo.by_key(key)
    assert offer is not None
    return offer


async def create_offer(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    *,
    title: str,
    kind: OfferKind,
    value: int,
    min_spend_minor: int = 0,
    valid_until: datetime | None = None,
    coupon_valid_days: int | None = 30,
    created_by: int | None = None,
) -> Offer:
    """A staff-made offer. ``value`` is a percentage, minor units, or points by ``kind``.

    Raises ``ValueError`` for an empty title, an impossible value or an end in the past.
    """
    kind = OfferKind(kind)
    title = title.strip()
    if not title or len(title) > 120:
        raise ValueError("an offer needs a title of 1–120 characters")
    _validate_offer(kind, value, min_spend_minor)
    now = clock.now()
    if valid_until is not None and valid_until <= now:
        raise ValueError("the offer would end before it starts")
    if coupon_valid_days is not None and not 1 <= coupon_valid_days <= 3650:
        raise ValueError("coupons are valid for 1–3650 days")
    return await OfferRepo(session).add(
        Offer(
            title=title,
            kind=str(kind),
            value=value,
            currency=config.currency,
            min_spend_minor=min_spend_minor,
            valid_from=now,
            valid_until=valid_until,
            coupon_valid_days=coupon_valid_days,
            is_active=True,
            created_by=created_by,
            created_at=now,
        )
    )


def coupon_expiry(offer: Offer, issued_at: datetime) -> datetime | None:
    """A coupon lasts ``coupon_valid_days``, and never beyond the offer's own end."""
    ends = [offer.valid_until] if offer.valid_until is not None else []
    if offer.coupon_valid_days is not None:
        ends.append(issued_at + timedelta(days=offer.coupon_valid_days))
    return min(ends) if ends else None


async def issue_coupon(
    session: AsyncSession,
    clock: Clock,
    *,
    member_id: int,
    offer: Offer,
    source: str,
    campaign_id: int | None = None,
) -> Coupon:
    """Give a member a coupon from ``offer`` with a fresh, unambiguous 8-character code.

    Raises ``ValueError`` when the offer is switched off or over.
    """
    now = clock.now()
    if not offer.is_active or (offer.valid_until is not None and offer.valid_until <= now):
        raise ValueError("this offer is no longer available")
    repo = CouponRepo(session)
    values = {
        "offer_id": offer.id,
        "member_id": member_id,
        "source": source[:32],
        "campaign_id": campaign_id,
        "issued_at": now,
        "expires_at": coupon_expiry(offer, now),
    }
    for _ in range(MAX_CODE_ATTEMPTS):
        coupon_id = await repo.insert_unless_code_taken({**values, "code": random_code()})
        if coupon_id is not None:
            coupon = await repo.get(coupon_id)
            assert coupon is not None
            return coupon
    raise RuntimeError("could not find a free coupon code")  # 31^8 codes: practically never


@dataclass(frozen=True, slots=True)
class IssuedCoupon:
    """A coupon given out in bulk: what a message about it needs."""

    member_id: int
    code: str
    expires_at: datetime | None


async def issue_coupons(
    session: AsyncSession,
    clock: Clock,
    *,
    member_ids: Sequence[int],
    offer: Offer,
    source: str,
    campaign_id: int | None = None,
) -> dict[int, IssuedCoupon]:
    """Give each member a coupon from ``offer``, in one INSERT per attempt (a broadcast's batch).

    The same codes and rules as ``issue_coupon``: a code another coupon already holds is simply
    drawn again for that member. Raises ``ValueError`` when the offer is switched off or over.
    """
    now = clock.now()
    if not offer.is_active or (offer.valid_until is not None and offer.valid_until <= now):
        raise ValueError("this offer is no longer available")
    expires_at = coupon_expiry(offer, now)
    common = {
        "offer_id": offer.id,
        "source": source[:32],
        "campaign_id": campaign_id,
        "issued_at": now,
        "expires_at": expires_at,
    }
    repo = CouponRepo(session)
    pending = list(dict.fromkeys(member_ids))
    issued: dict[int, IssuedCoupon] = {}
    for _ in range(MAX_CODE_ATTEMPTS):
        if not pending:
            break
        codes: dict[str, int] = {}
        for member_id in pending:
            code = random_code()
            while code in codes:
                code = random_code()
            codes[code] = member_id
        rows = [{**common, "member_id": owner, "code": code} for code, owner in codes.items()]
        for code in await repo.insert_many_unless_code_taken(rows):
            member_id = codes[code]
            issued[member_id] = IssuedCoupon(member_id, code, expires_at)
        pending = [member_id for member_id in pending if member_id not in issued]
    if pending:
        raise RuntimeError("could not find free coupon codes")  # 31^8 codes: practically never
    return issued


async def active_coupons(session: AsyncSession, clock: Clock, member_id: int) -> list[Coupon]:
    """The member's usable coupons (not redeemed, not expired), newest first, offers loaded."""
    return await CouponRepo(session).active_for_member(member_id, clock.now())


async def redeem_coupon(
    session: AsyncSession, clock: Clock, *, code: str, staff_telegram_id: int
) -> RedeemResult:
    """Use a coupon at the till, atomically: of two tills at once exactly one succeeds.

    ``code`` is forgiving (case, spaces, a dash). A points coupon credits its points as it
    is redeemed.
    """
    normalized = normalize_code(code)
    repo = CouponRepo(session)
    if not normalized or len(normalized) > 16:
        return RedeemResult("not_found", None)
    now = clock.now()
    won = await repo.redeem(normalized, now, staff_telegram_id)
    coupon = await repo.by_code(normalized)
    if coupon is None:
        return RedeemResult("not_found", None)
    if won:
        if coupon.offer.kind == OfferKind.POINTS and coupon.offer.value > 0:
            await add_points(
                session, clock, member_id=coupon.member_id, delta=coupon.offer.value,
                reason=PointsReason.ADJUSTMENT, note=f"coupon {display_code(coupon.code)}",
            )  # fmt: skip
        return RedeemResult("redeemed", coupon)
    if coupon.redeemed_at is not None:
        return RedeemResult("already_used", coupon)
    return RedeemResult("expired", coupon)


def describe_offer(offer: Offer, t: Translator) -> str:
    """What the offer gives, in the reader's language: "10% off", "¥20 off orders over ¥100"."""
    kind = OfferKind(offer.kind)
    values: dict[str, object] = {}
    if kind == OfferKind.PERCENT_OFF:
        values["percent"] = offer.value
    elif kind == OfferKind.AMOUNT_OFF:
        values["amount"] = format_money(offer.value, offer.currency)
    elif kind == OfferKind.POINTS:
        values["points"] = offer.value
    key = f"loyalty.offer.{kind}"
    if offer.min_spend_minor > 0 and kind != OfferKind.POINTS:
        key += "_min"
        values["min_spend"] = format_money(offer.min_spend_minor, offer.currency)
    return t(key, **values)
