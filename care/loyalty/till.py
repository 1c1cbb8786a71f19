"""At the till: what a cashier types, checked, then booked through loyalty — and audited.

The chat's /purchase and /redeem and the CSV importer share these checks, so a line the
importer rejects is exactly an input the till would refuse.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.audit import audit
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.money import parse_amount
from care.loyalty.coupons import RedeemResult, redeem_coupon
from care.loyalty.purchases import MAX_AMOUNT_MINOR, PurchaseResult, record_purchase
from care.members.lookup import find_by_code_or_phone
from storage.models import Coupon, Member
from storage.repos.members import MemberRepo

RECEIPT_MAX = 64
NO_CATEGORY = "-"
TillProblem = Literal[
    "bad_amount",
    "absurd_amount",
    "unknown_category",
    "unknown_member",
    "ambiguous_member",
    "bad_receipt",
]


class TillInputError(Exception):
    """Input the till refuses; ``reason`` names the problem, ``value`` what was typed."""

    def __init__(self, reason: TillProblem, value: str = "") -> None:
        super().__init__(f"{reason}: {value!r}")
        self.reason: TillProblem = reason
        self.value = value


def parse_till_amount(text: str, config: CareConfig) -> int:
    """``88.50`` → 8850 minor units; zero, negative, malformed or absurd amounts are refused."""
    try:
        amount = parse_amount(text, config.currency)
    except ValueError:
        raise TillInputError("bad_amount", text) from None
    if amount <= 0:
        raise TillInputError("bad_amount", text)
    if amount > MAX_AMOUNT_MINOR:
        raise TillInputError("absurd_amount", text)
    return amount


def match_category(text: str | None, config: CareConfig) -> str | None:
    """The shop's category ``text`` names (case-insensitive); empty or ``-`` is no category."""
    cleaned = (text or "").strip()
    if not cleaned or cleaned == NO_CATEGORY:
        return None
    for category in config.categories:
        if category.lower() == cleaned.lower():
            return category
    raise TillInputError("unknown_category", cleaned)


def check_receipt(text: str | None) -> str | None:
    cleaned = (text or "").strip()
    if not cleaned:
        return None
    if len(cleaned) > RECEIPT_MAX or any(ch.isspace() for ch in cleaned):
        raise TillInputError("bad_receipt", cleaned)
    return cleaned


async def till_member(session: AsyncSession, text: str) -> Member:
    """The one member a member code or phone number names."""
    found = await find_by_code_or_phone(session, text, limit=2)
    if not found:
        raise TillInputError("unknown_member", text)
    if len(found) > 1:
        raise TillInputError("ambiguous_member", text)
    return found[0]


async def record_till_purchase(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    *,
    member: Member,
    amount_minor: int,
    category: str | None,
    receipt_id: str,
    staff_telegram_id: int,
    staff_role: str,
) -> PurchaseResult:
    """Book a purchase a cashier rang up; a new one is audited, a repeated receipt is not.

    Raises ``care.loyalty.purchases.PurchaseError`` as ``record_purchase`` does.
    """
    result = await record_purchase(
        session,
        config,
        clock,
        member_id=member.id,
        amount_minor=amount_minor,
        receipt_id=receipt_id,
        category=category,
        source="till",
        recorded_by=staff_telegram_id,
    )
    if not result.duplicate:
        await audit(
            session,
            clock,
            actor_telegram_id=staff_telegram_id,
            actor_role=staff_role,
            action="purchase.record",
            target=f"member:{member.id}",
            details={
                "purchase_id": result.purchase_id,
                "receipt_id": receipt_id,
                "amount_minor": amount_minor,
                "currency": config.currency,
                "points": result.points_earned,
            },
        )
    return result


async def redeem_at_till(
    session: AsyncSession,
    clock: Clock,
    *,
    code: str,
    staff_telegram_id: int,
    staff_role: str,
) -> RedeemResult:
    """Redeem a coupon (atomically, in loyalty); a successful redemption is audited."""
    result = await redeem_coupon(session, clock, code=code, staff_telegram_id=staff_telegram_id)
    if result.status == "redeemed" and result.coupon is not None:
        await audit(
            session,
            clock,
            actor_telegram_id=staff_telegram_id,
            actor_role=staff_role,
            action="coupon.redeem",
            target=f"coupon:{result.coupon.code}",
            details={"member_id": result.coupon.member_id, "offer_id": result.coupon.offer_id},
        )
    return result


async def coupon_holder(session: AsyncSession, coupon: Coupon) -> Member | None:
    """The member a coupon was issued to (to name them at the till)."""
    return await MemberRepo(session).get(coupon.member_id)
