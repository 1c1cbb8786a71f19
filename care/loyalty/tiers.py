"""Tiers: which tier a 12-month spend reaches, and how far a member is from the next one."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Member, Tier
from storage.repos.loyalty import TierRepo


@dataclass(frozen=True, slots=True)
class TierProgress:
    current: Tier
    next: Tier | None
    spend_12m_minor: int
    remaining_minor: int


def tier_for_spend(tiers: list[Tier], spend_12m_minor: int) -> Tier:
    """The highest tier whose threshold the 12-month spend reaches (``tiers`` by rank)."""
    reached = [tier for tier in tiers if tier.min_spend_12m_minor <= spend_12m_minor]
    return reached[-1] if reached else tiers[0]


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
