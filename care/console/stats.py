"""The shop's numbers for /stats: members, satisfaction over 12 weeks, tickets and
conversations (``conversation_stats``), campaigns, rules.

Every figure is a grouped query over indexed columns; nothing walks the members in Python. Weeks
are shop-local calendar weeks (Monday to Sunday in ``config.default_timezone``), the current one
last and possibly incomplete.

NPS is the share of promoters (9–10) minus the share of detractors (0–6), from -100 to 100;
CSAT is the average of the 1–5 scores; the expectation gap is the share of CSAT answers that
found the visit worse than, as, or better than expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TypeVar

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from care.automation.report import RuleResult, rule_report
from care.campaigns.report import CampaignReport, campaign_report
from care.console.conversation_stats import ConversationStats, conversation_stats
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.quiet_hours import member_zone
from care.value.signal import SignalStatus, signal_status
from storage.enums import (
    CURRENT_STAGES,
    RETIRED_STAGES,
    Expectation,
    MemberStatus,
    SurveyKind,
    TicketStatus,
    ValueTier,
)
from storage.models import Member, MemberValue, SurveyResponse, Ticket
from storage.repos.campaigns import CampaignRepo

_Key = TypeVar("_Key")

WEEKS = 12
RECENT_CAMPAIGNS = 3
UNSCORED = "unscored"


@dataclass(frozen=True, slots=True)
class MemberStats:
    total: int
    new_7d: int
    new_30d: int
    by_stage: dict[str, int]
    by_value_tier: dict[str, int]
    # From the customer-value model (empty / None before its first fit): predicted 12-month
    # value per value tier, and the purchases expected from members in the next 30 days.
    predicted_value_by_tier: dict[str, int] = field(default_factory=dict)
    expected_purchases_30d: float | None = None
    # Members who turned marketing off: a consent flag, shown beside the stages, not among them.
    offers_off: int = 0


@dataclass(slots=True)
class WeekStats:
    """One shop-local week of survey answers."""

    start: date
    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    csat_sum: int = 0
    csat_count: int = 0
    worse: int = 0
    as_expected: int = 0
    better: int = 0

    @property
    def nps_count(self) -> int:
        return self.promoters + self.passives + self.detractors

    @property
    def nps(self) -> float | None:
        return nps_score(self.promoters, self.passives, self.detractors)

    @property
    def csat(self) -> float | None:
        return self.csat_sum / self.csat_count if self.csat_count else None

    @property
    def expectation_count(self) -> int:
        return self.worse + self.as_expected + self.better


@dataclass(frozen=True, slots=True)
class TicketStats:
    open: int
    oldest_age: timedelta | None
    median_age: timedelta | None


@dataclass(frozen=True, slots=True)
class ShopStats:
    at: datetime
    members: MemberStats
    weeks: list[WeekStats]
    period: WeekStats  # the 12 weeks together
    tickets: TicketStats
    campaigns: list[CampaignReport]
    rules: list[RuleResult] = field(default_factory=list)
    conversations: ConversationStats = field(default_factory=ConversationStats)
    # The churn signal the shop uses and the backtest it was chosen on (care.value.signal).
    churn: SignalStatus | None = None


def nps_score(promoters: int, passives: int, detractors: int) -> float | None:
    """% promoters − % detractors (−100..100); None without answers."""
    total = promoters + passives + detractors
    if total == 0:
        return None
    return 100.0 * (promoters - detractors) / total


def week_starts(now: datetime, tz_name: str, weeks: int = WEEKS) -> list[datetime]:
    """The UTC instants at which the last ``weeks`` shop-local weeks began (Mondays 00:00)."""
    zone = member_zone(tz_name)
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    starts = [monday - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]
    return [
        datetime.combine(day, datetime.min.time(), zone).astimezone(now.tzinfo) for day in starts
    ]


async def member_stats(session: AsyncSession, clock: Clock) -> MemberStats:
    """Registered members: total, joined in 7 and 30 days, by lifecycle stage and value tier."""
    now = clock.now()
    # Customers imported from the shop's old list count too, before they join in Telegram.
    registered = (
        Member.status.in_((MemberStatus.ACTIVE, MemberStatus.IMPORTED)),
        Member.deleted_at.is_(None),
    )
    row = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(
                    func.sum(case((Member.registered_at >= now - timedelta(days=7), 1), else_=0)),
                    0,
                ),
                func.coalesce(
                    func.sum(case((Member.registered_at >= now - timedelta(days=30), 1), else_=0)),
                    0,
                ),
                func.coalesce(
                    func.sum(case((Member.marketing_opt_in.is_not(True), 1), else_=0)), 0
                ),
            ).where(*registered)
        )
    ).one()
    stages = await _grouped(
        session,
        select(Member.lifecycle_stage, func.count())
        .where(*registered)
        .group_by(Member.lifecycle_stage),
    )
    tiers = await _grouped(
        session,
        select(Member.value_tier, func.count()).where(*registered).group_by(Member.value_tier),
    )
    by_stage = {stage.value: int(stages.pop(stage.value, 0)) for stage in CURRENT_STAGES}
    # A retired stage still on a row (before the hourly refresh) is not shown as a stage.
    for stage in RETIRED_STAGES:
        stages.pop(stage.value, None)
    by_stage.update({str(k): int(v) for k, v in stages.items()})
    by_value = {tier.value: int(tiers.pop(tier.value, 0)) for tier in ValueTier}
    by_value[UNSCORED] = int(sum(tiers.values()))
    predicted = (
        await session.execute(
            select(
                Member.value_tier,
                func.sum(MemberValue.value_12m_minor),
                func.sum(MemberValue.purchases_30d),
            )
            .join(MemberValue, MemberValue.member_id == Member.id)
            .where(*registered)
            .group_by(Member.value_tier)
        )
    ).all()
    value_by_tier = {str(tier or UNSCORED): int(value or 0) for tier, value, _ in predicted}
    return MemberStats(
        int(row[0]),
        int(row[1]),
        int(row[2]),
        by_stage,
        by_value,
        offers_off=int(row[3]),
        predicted_value_by_tier=value_by_tier,
        expected_purchases_30d=(
            float(sum(float(month or 0) for *_, month in predicted)) if predicted else None
        ),
    )


def _week_index(starts: list[datetime]) -> ColumnElement[int]:
    """A CASE expression numbering a response's week 0..n-1 (portable: no date functions)."""
    whens = [
        (SurveyResponse.created_at >= start, i) for i, start in reversed(list(enumerate(starts)))
    ]
    return case(*whens, else_=-1)


async def survey_weeks(
    session: AsyncSession, config: CareConfig, clock: Clock, weeks: int = WEEKS
) -> list[WeekStats]:
    """NPS, CSAT and the expectation gap per shop-local week, oldest week first."""
    now = clock.now()
    starts = week_starts(now, config.default_timezone, weeks)
    tz = member_zone(config.default_timezone)
    result = [WeekStats(start=start.astimezone(tz).date()) for start in starts]
    week = _week_index(starts).label("week")
    query = (
        select(
            week,
            SurveyResponse.kind,
            SurveyResponse.score,
            SurveyResponse.expectation,
            func.count(),
        )
        .where(
            SurveyResponse.created_at >= starts[0],
            SurveyResponse.created_at <= now,
            SurveyResponse.kind.in_((SurveyKind.NPS, SurveyKind.CSAT)),
        )
        .group_by(week, SurveyResponse.kind, SurveyResponse.score, SurveyResponse.expectation)
    )
    for index, kind, score, expectation, count in await session.execute(query):
        if not 0 <= index < weeks:
            continue
        bucket = result[index]
        if kind == SurveyKind.NPS:
            if score >= 9:
                bucket.promoters += count
            elif score >= 7:
                bucket.passives += count
            else:
                bucket.detractors += count
            continue
        bucket.csat_sum += score * count
        bucket.csat_count += count
        if expectation == Expectation.WORSE:
            bucket.worse += count
        elif expectation == Expectation.AS_EXPECTED:
            bucket.as_expected += count
        elif expectation == Expectation.BETTER:
            bucket.better += count
    return result


def total_of(weeks: list[WeekStats]) -> WeekStats:
    """All the weeks' answers added together."""
    total = WeekStats(start=weeks[0].start if weeks else date.min)
    for week in weeks:
        total.promoters += week.promoters
        total.passives += week.passives
        total.detractors += week.detractors
        total.csat_sum += week.csat_sum
        total.csat_count += week.csat_count
        total.worse += week.worse
        total.as_expected += week.as_expected
        total.better += week.better
    return total


async def ticket_stats(session: AsyncSession, clock: Clock) -> TicketStats:
    """Tickets not closed yet, and how long the oldest and the median one have waited."""
    now = clock.now()
    unclosed = Ticket.status != TicketStatus.CLOSED
    count = int(
        await session.scalar(select(func.count()).select_from(Ticket).where(unclosed)) or 0
    )
    if count == 0:
        return TicketStats(0, None, None)
    by_age = select(Ticket.created_at).where(unclosed).order_by(Ticket.created_at)
    oldest = await session.scalar(by_age.limit(1))
    # The median by position: one or two rows read with OFFSET, portable and index-backed.
    middle = list(await session.scalars(by_age.offset((count - 1) // 2).limit(2 - count % 2)))
    median_created = middle[0] + (middle[-1] - middle[0]) / 2
    return TicketStats(count, now - oldest if oldest else None, now - median_created)


async def recent_campaigns(
    session: AsyncSession, limit: int = RECENT_CAMPAIGNS
) -> list[CampaignReport]:
    """The latest started campaigns with their delivery results, newest first."""
    reports = []
    for campaign in await CampaignRepo(session).recent(limit):
        report = await campaign_report(session, campaign.id)
        if report is not None:
            reports.append(report)
    return reports


async def shop_stats(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
) -> ShopStats:
    """Everything /stats shows, as of now; the care rules with any touch in the report period."""
    weeks = await survey_weeks(session, config, clock)
    period_start = week_starts(clock.now(), config.default_timezone)[0]
    return ShopStats(
        at=clock.now(),
        members=await member_stats(session, clock),
        weeks=weeks,
        period=total_of(weeks),
        tickets=await ticket_stats(session, clock),
        campaigns=await recent_campaigns(session),
        rules=[
            result
            for result in await rule_report(session, clock, config)
            if result.sent or result.held_out
        ],
        conversations=await conversation_stats(session, period_start, clock.now()),
        churn=await signal_status(session),
    )


async def _grouped(session: AsyncSession, query: Select[_Key, int]) -> dict[_Key, int]:
    """``{key: count}`` from a ``SELECT key, count(*) … GROUP BY key``."""
    return {key: int(count) for key, count in await session.execute(query)}
