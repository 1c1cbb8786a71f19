"""The triggers of the care rules, one module each: what makes a member due, and what is
particular to that occasion (``base.TriggerPass`` says the steps). ``TRIGGERS`` registers each
scheduled trigger's pass by its ``Trigger``; ``low_score`` has none, it is handled where an
answer is recorded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from care.automation.rules import Rule, Trigger
from care.automation.triggers.anniversary import Anniversary, NpsCycle
from care.automation.triggers.base import BaseTrigger, Candidate, TriggerPass
from care.automation.triggers.birthday import Birthday
from care.automation.triggers.complaint_closed import ComplaintClosed
from care.automation.triggers.coupon_expiry import CouponExpiry
from care.automation.triggers.joined import Joined
from care.automation.triggers.purchase import Purchased
from care.automation.triggers.referral import Referral
from care.automation.triggers.stage import AtRisk, Lapsed
from care.automation.triggers.tiers import NearNextTier, TierUpgrade
from care.core.config import CareConfig

TRIGGERS: dict[Trigger, type[BaseTrigger[*tuple[Any, ...]]]] = {
    kind.trigger: kind
    for kind in (
        Joined, Purchased, Birthday, AtRisk, Lapsed, CouponExpiry, Anniversary, NpsCycle,
        TierUpgrade, NearNextTier, Referral, ComplaintClosed,
    )
}  # fmt: skip


def trigger_pass(
    session: AsyncSession, config: CareConfig, rule: Rule, now: datetime, since: datetime | None
) -> TriggerPass[*tuple[Any, ...]]:
    """The pass of ``rule``'s trigger at ``now``, covering occasions since ``since``."""
    return TRIGGERS[rule.trigger](session, config, rule, now, since)


__all__ = ["TRIGGERS", "Candidate", "TriggerPass", "trigger_pass"]
