"""``tier_upgrade`` (a purchase raised the tier) and ``near_next_tier`` (a purchase left the
member within ``NEAR_TIER_PCT`` of the next tier's threshold).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, false, select

from care.automation.rules import NEAR_TIER_PCT, Trigger
from care.automation.triggers.base import BaseTrigger, Candidate, iso
from care.core.money import format_money
from care.loyalty.tiers import list_tiers, tier_name
from storage.models import Member, Purchase, Tier

# Upgrades happen when a purchase is recorded; a tier change at that instant was an upgrade.
UPGRADE_TOLERANCE = timedelta(minutes=5)


def near_floor(tier: Tier) -> int:
    """The 12-month spend from which a member counts as close to ``tier``."""
    return tier.min_spend_12m_minor * (100 - NEAR_TIER_PCT) // 100


def _multiplier(pct: int) -> str:
    return f"{pct / 100:g}"


class _TierTrigger(BaseTrigger[()]):
    tiers: list[Tier]

    async def prepare(self) -> None:
        self.tiers = await list_tiers(self.session)

    def message_facts(self, facts: dict[str, Any], member: Member, locale: str, tz: str) -> None:
        current = next((t for t in self.tiers if t.code == member.tier_code), None)
        if current is not None:
            facts["tier"] = tier_name(current, locale)
            facts["multiplier_pct"] = current.points_multiplier_pct
            facts["multiplier"] = _multiplier(current.points_multiplier_pct)
        following: Tier | None = facts.pop("next_tier", None)
        if following is not None:
            facts["next_tier"] = tier_name(following, locale)
            facts["next_multiplier_pct"] = following.points_multiplier_pct
            facts["next_multiplier"] = _multiplier(following.points_multiplier_pct)
            remaining = facts.pop("remaining_minor")
            facts["remaining"] = format_money(remaining, self.config.currency)


class TierUpgrade(_TierTrigger):
    trigger = Trigger.TIER_UPGRADE

    def query(self) -> Select[int]:
        base = self.tiers[0].code if self.tiers else "member"
        return select(Member.id).where(
            Member.tier_code != base,
            *self.due_range(Member.tier_changed_at),
            ~self.touched_since(Member.tier_changed_at),
        )

    def candidate(self, member: Member, row: Row[int]) -> Candidate | None:
        assert member.tier_changed_at is not None
        occasion = f"{member.tier_code}:{iso(member.tier_changed_at)}"
        return Candidate(member, occasion, member.tier_changed_at)

    async def keep(self, batch: list[Candidate]) -> list[Candidate]:
        if not batch:
            return batch
        # Upgrades happen as a purchase is recorded; a tier change with no purchase recorded
        # at that moment was a downgrade by the segment refresh, which deserves no party. Nor
        # does one the till took back: a voided or refunded purchase upgraded nobody.
        recorded = await self.session.execute(
            select(Purchase.member_id, Purchase.created_at).where(
                Purchase.member_id.in_([c.member.id for c in batch]),
                Purchase.created_at > self.start - UPGRADE_TOLERANCE,
                Purchase.refunded_minor == 0,
            )
        )
        times: dict[int, list[datetime]] = {}
        for member_id, created_at in recorded:
            if member_id is not None:
                times.setdefault(member_id, []).append(created_at)
        return [
            c
            for c in batch
            if any(abs(t - c.due_at) <= UPGRADE_TOLERANCE for t in times.get(c.member.id, ()))
        ]


class NearNextTier(_TierTrigger):
    trigger = Trigger.NEAR_NEXT_TIER

    def query(self) -> Select[int]:
        # The recent buyers (last_purchase_at's index) who spent at least the lowest "close"
        # floor; which tier each is close to is decided on the loaded row.
        floors = [near_floor(tier) for tier in self.tiers[1:]]
        return select(Member.id).where(
            Member.spend_12m_minor >= min(floors) if floors else false(),
            *self.due_range(Member.last_purchase_at),
            *self.repeat_guard(),
        )

    def candidate(self, member: Member, row: Row[int]) -> Candidate | None:
        ranks = [tier.code for tier in self.tiers]
        if member.tier_code not in ranks or member.last_purchase_at is None:
            return None
        index = ranks.index(member.tier_code)
        if index + 1 >= len(self.tiers):
            return None
        following = self.tiers[index + 1]
        if not near_floor(following) <= member.spend_12m_minor < following.min_spend_12m_minor:
            return None
        remaining = following.min_spend_12m_minor - member.spend_12m_minor
        occasion = f"{following.code}:{member.last_purchase_at.date().isoformat()}"
        return Candidate(
            member, occasion, member.last_purchase_at + self.rule.delay,
            {"next_tier": following, "remaining_minor": remaining},
        )  # fmt: skip
