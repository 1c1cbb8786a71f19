"""The offers staff may issue from: the overview with its counts, and one offer by id."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.loyalty.offers import offer_usable, usable_offers
from storage.models import Coupon, Offer


@dataclass(frozen=True, slots=True)
class OfferLine:
    offer: Offer
    issued: int
    redeemed: int


async def offer_overview(session: AsyncSession, clock: Clock, limit: int = 20) -> list[OfferLine]:
    """Active offers, newest first, with how many coupons were issued and redeemed (one query)."""
    now = clock.now()
    issued = func.count(Coupon.id)
    redeemed = func.count(Coupon.redeemed_at)
    query = (
        select(Offer, issued, redeemed)
        .outerjoin(Coupon, Coupon.offer_id == Offer.id)
        .where(usable_offers(now))
        .group_by(Offer.id)
        .order_by(Offer.id.desc())
        .limit(limit)
    )
    rows = await session.execute(query)
    return [OfferLine(offer, int(n), int(r)) for offer, n, r in rows]


async def get_offer(session: AsyncSession, clock: Clock, offer_id: int) -> Offer | None:
    """An offer staff may still issue from (active, not past its end), or None."""
    offer = await session.get(Offer, offer_id)
    return offer if offer_usable(offer, clock.now()) else None
