"""Segment rules, as pure functions: lifecycle stages, churn risk, RFM quintile scores and
value tiers. The reference the set-based refresh (``care.segments.refresh``) applies to every
member in SQL, and what a live purchase uses to move one member at once; a test runs both over a
varied population and checks they agree.

RFM, scored 1–5 as quintiles over active members (at least one purchase, not deleted):
recency from ``last_purchase_at``, frequency = purchases in the last 12 months, monetary =
spend in the last 12 months. Value tier from the total: high ≥ 12, medium ≥ 8, else low.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from care.core.config import CareConfig
from care.core.gap_rule import MIN_USUAL_GAP_DAYS, churn_risk, usual_gap_days
from care.core.sqltime import SECONDS_PER_DAY
from storage.enums import LifecycleStage, ValueTier
from storage.models import Member

__all__ = [
    "MIN_USUAL_GAP_DAYS",
    "StageFacts",
    "base_stage",
    "churn_risk",
    "days_since",
    "lifecycle_stage",
    "usual_gap_days",
    "value_tier",
]


@dataclass(frozen=True, slots=True)
class StageFacts:
    """What the stage rules read about one member."""

    blocked: bool
    marketing_opt_in: bool
    purchase_count: int
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    avg_gap_days: float | None
    stage: str
    stage_changed_at: datetime | None

    @classmethod
    def of(cls, member: Member) -> StageFacts:
        return cls(
            blocked=member.blocked_at is not None,
            marketing_opt_in=bool(member.marketing_opt_in),
            purchase_count=member.purchase_count or 0,
            first_purchase_at=member.first_purchase_at,
            last_purchase_at=member.last_purchase_at,
            avg_gap_days=member.avg_gap_days,
            stage=member.lifecycle_stage,
            stage_changed_at=member.stage_changed_at,
        )


def days_since(then: datetime, now: datetime) -> float:
    return (now - then).total_seconds() / SECONDS_PER_DAY


def base_stage(
    facts: StageFacts, now: datetime, config: CareConfig, shop_gap_days: float
) -> LifecycleStage:
    """The stage from purchases alone (prospect, new, active, at risk, lapsed)."""
    if facts.purchase_count <= 0 or facts.last_purchase_at is None:
        return LifecycleStage.PROSPECT
    usual = usual_gap_days(facts.purchase_count, facts.avg_gap_days, config, shop_gap_days)
    gap = days_since(facts.last_purchase_at, now)
    if gap > config.lapsed_gap_factor * usual:
        return LifecycleStage.LAPSED
    if gap > config.at_risk_gap_factor * usual:
        return LifecycleStage.AT_RISK
    new_since = now - timedelta(days=config.new_member_days)
    if (
        facts.purchase_count <= 1
        and facts.first_purchase_at is not None
        and facts.first_purchase_at >= new_since
    ):
        return LifecycleStage.NEW
    return LifecycleStage.ACTIVE


def lifecycle_stage(
    facts: StageFacts, now: datetime, config: CareConfig, shop_gap_days: float
) -> LifecycleStage:
    """The member's lifecycle stage. The rules, first match wins:

    1. unreachable — the member blocked the bot;
    2. prospect — no purchase yet;
    3. lapsed — days since the last purchase > ``lapsed_gap_factor`` × the usual gap;
    4. at_risk — days since the last purchase > ``at_risk_gap_factor`` × the usual gap;
    5. won_back — buying normally again (new or active below) after being at risk or lapsed,
       for ``won_back_days`` from the moment they came back;
    6. new — one purchase, made within ``new_member_days``;
    7. active — everyone else who buys.

    Marketing consent is no stage: it is the member's ``marketing_opt_in`` flag, and a member
    who declined offers still buys, lapses and answers surveys like anyone else.
    """
    if facts.blocked:
        return LifecycleStage.UNREACHABLE
    stage = base_stage(facts, now, config, shop_gap_days)
    if stage in (LifecycleStage.NEW, LifecycleStage.ACTIVE):
        if facts.stage in (LifecycleStage.AT_RISK, LifecycleStage.LAPSED):
            return LifecycleStage.WON_BACK
        won_back_since = now - timedelta(days=config.won_back_days)
        if (
            facts.stage == LifecycleStage.WON_BACK
            and facts.stage_changed_at is not None
            and facts.stage_changed_at > won_back_since
        ):
            return LifecycleStage.WON_BACK
    return stage


HIGH_VALUE_MIN_RFM = 12
MEDIUM_VALUE_MIN_RFM = 8


def value_tier(rfm_total: int) -> ValueTier:
    """High / medium / low value from the RFM total (3–15)."""
    if rfm_total >= HIGH_VALUE_MIN_RFM:
        return ValueTier.HIGH
    if rfm_total >= MEDIUM_VALUE_MIN_RFM:
        return ValueTier.MEDIUM
    return ValueTier.LOW


def quintile_score(rank: int, population: int) -> int:
    """1–5 from a 1-based rank among ``population`` (ties share the lowest rank).

    Equivalently, with ``below`` = how many members have a strictly smaller value:
    ``1 + below * 5 // population``. The SQL uses that form through four cut values.
    """
    return (rank - 1) * 5 // population + 1


def quintile_positions(population: int) -> list[int]:
    """1-based positions in the sorted values whose value a member must exceed per extra point.

    ``score = 1 + #{k : value > sorted[p_k]}`` with ``p_k = ceil(k * population / 5)``:
    exceeding the p-th smallest value means at least p members are strictly below.
    """
    return [-(-k * population // 5) for k in range(1, 5)]
