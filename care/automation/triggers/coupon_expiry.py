"""``coupon_expiry``: ``delay`` before an unused coupon expires; the coupon is marked reminded."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, select, update

from care.automation.rules import Trigger
from care.automation.triggers.base import BaseTrigger, Candidate
from care.loyalty.coupons import coupon_facts
from storage.models import Coupon, Member


class CouponExpiry(BaseTrigger[int, datetime | None]):
    trigger = Trigger.COUPON_EXPIRY
    marked = True

    def query(self) -> Select[int, int, datetime | None]:
        # Due ``delay`` before expiry, for a coupon held at least that long already.
        return (
            select(Member.id, Coupon.id, Coupon.expires_at)
            .join(Coupon, Coupon.member_id == Member.id)
            .where(
                Coupon.expires_at > self.now,
                Coupon.expires_at > self.start + self.rule.delay,
                Coupon.expires_at <= self.now + self.rule.delay,
                Coupon.redeemed_at.is_(None),
                Coupon.expiry_reminded_at.is_(None),
                Coupon.issued_at <= self.now - self.rule.delay,
            )
        )

    def candidate(self, member: Member, row: Row[int, int, datetime | None]) -> Candidate | None:
        _, coupon_id, expires_at = row
        assert expires_at is not None  # the query asks for expiring coupons
        return Candidate(
            member, f"coupon:{coupon_id}", expires_at - self.rule.delay, {"coupon_id": coupon_id}
        )

    async def mark(self, decided: list[Candidate]) -> None:
        await self.session.execute(
            update(Coupon)
            .where(Coupon.id.in_([c.facts["coupon_id"] for c in decided]))
            .values(expiry_reminded_at=self.now)
        )

    async def load_facts(self, treated: list[Candidate]) -> None:
        coupons = {
            coupon.id: coupon
            for coupon in await self.session.scalars(
                select(Coupon).where(Coupon.id.in_([c.facts["coupon_id"] for c in treated]))
            )
        }
        for c in treated:
            c.facts["coupon_row"] = coupons[c.facts["coupon_id"]]

    def message_facts(self, facts: dict[str, Any], member: Member, locale: str, tz: str) -> None:
        coupon: Coupon = facts.pop("coupon_row")
        facts["coupon"] = coupon_facts(coupon.code, coupon.expires_at, coupon.offer, locale, tz)
