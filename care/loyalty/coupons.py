"""Coupons: issuing them (one or a batch) with fresh unambiguous codes, the member's usable
ones, and redeeming one at the till.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.codes import display_code, normalize_code, random_code
from care.core.i18n import translator
from care.core.quiet_hours import member_zone
from care.loyalty.offers import coupon_expiry, describe_offer, offer_usable
from care.loyalty.points import add_points
from storage.enums import OfferKind, PointsReason
from storage.models import Coupon, Offer
from storage.repos.loyalty import CouponRepo

MAX_CODE_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class RedeemResult:
    status: Literal["redeemed", "not_found", "expired", "already_used"]
    coupon: Coupon | None


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
    issued = await issue_coupons(
        session, clock, member_ids=[member_id], offer=offer, source=source,
        campaign_id=campaign_id,
    )  # fmt: skip
    coupon = await CouponRepo(session).by_code(issued[member_id].code)
    assert coupon is not None
    return coupon


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
    if not offer_usable(offer, now):
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


def coupon_facts(
    code: str, expires_at: datetime | None, offer: Offer, locale: str, tz: str
) -> dict[str, str | None]:
    """What a message says about a coupon: the code as printed, what it gives, its last day in
    the member's time zone."""
    expires = None
    if expires_at is not None:
        expires = expires_at.astimezone(member_zone(tz)).date().isoformat()
    return {
        "code": display_code(code),
        "offer": describe_offer(offer, translator(locale)),
        "expires": expires,
    }
