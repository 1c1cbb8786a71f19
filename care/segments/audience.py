"""Audiences: who a broadcast or a coupon issue reaches, as one set-based query.

An audience spec is a small JSON-able dict ``{"kind": ..., "value": ...}`` stored on the
campaign:

- ``all``: every reachable registered member (``value`` is ``None``);
- ``tier``: members of one loyalty tier (``value`` is the tier code, e.g. ``gold``);
- ``stage``: members in one lifecycle stage (``value`` from ``LifecycleStage``);
- ``segment``: a value tier (``high`` / ``medium`` / ``low``), one of the RFM segments in
  ``RFM_SEGMENTS`` below, or ``churn_risk``: members at risk by the shop's churn signal, the
  one of P(alive), expected purchases and the gap rule that ranked leavers best on the shop's
  own history (``CHURN_RISK`` below);
- ``interest``: members who chose a shop category as an interest.

Every audience starts from the same base: registered (status active), not deleted, with a chat
to write to and not blocked. For messages (``marketing=True``, the default) members also need the
marketing opt-in. Coupon issuing without a message (``marketing=False``) reaches the whole
segment: a coupon that silently appears under /offers is no marketing message.

Counting, sampling and iterating all use the same WHERE clause, so the count a staff member
confirms is exactly the set that is walked; iteration goes by member id in batches, so memory
stays flat however large the shop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import RETIRED_STAGES, LifecycleStage, MemberStatus, ValueTier
from storage.models import ChurnSignal, Member, MemberInterest, MemberValue, Tier

_Key = TypeVar("_Key")

KINDS: tuple[str, ...] = ("all", "tier", "stage", "segment", "interest")

# Named RFM segments (scores are 1–5 quintiles; 5 is best: most recent, most frequent, most
# spent). The classic retail reading of the RFM grid:
RFM_SEGMENTS: dict[str, ColumnElement[bool]] = {
    # Bought recently, buy often, spend most: reward them, ask them for referrals.
    "champions": and_(Member.rfm_r >= 4, Member.rfm_f >= 4, Member.rfm_m >= 4),
    # Buy often; not necessarily the biggest spenders: loyalty perks keep them.
    "loyal": and_(Member.rfm_r >= 3, Member.rfm_f >= 4),
    # Recent first purchases: the moment to turn a first visit into a habit.
    "promising": and_(Member.rfm_r >= 4, Member.rfm_f <= 2),
    # Used to buy often and much, but not lately: win them back before they are gone.
    "cant_lose": and_(Member.rfm_r <= 2, Member.rfm_f >= 4),
    # Long ago, rarely, little: a light, cheap touch.
    "hibernating": and_(Member.rfm_r <= 2, Member.rfm_f <= 2, Member.rfm_m <= 2),
}
# The churn-risk segment follows the shop's churn signal (``churn_signal``, chosen by the value
# refresh from the shop's own backtest, see ``care.value.signal``): with a model signal, the
# members the refresh flagged at risk by it (``member_value.at_risk``); with the gap rule, the
# at-risk and lapsed lifecycle stages, which is also what it is before any choice was made (the
# model has scored nobody yet). One correlated condition: the choice is read in the same query,
# so counting, sampling and walking an audience agree even across a refresh.
_GAP_RULE_CHOSEN = or_(
    ~exists().where(ChurnSignal.id == 1),
    exists().where(ChurnSignal.id == 1, ChurnSignal.signal == "gap_rule"),
)
CHURN_RISK = or_(
    and_(
        _GAP_RULE_CHOSEN,
        Member.lifecycle_stage.in_([LifecycleStage.AT_RISK, LifecycleStage.LAPSED]),
    ),
    and_(
        ~_GAP_RULE_CHOSEN,
        exists().where(MemberValue.member_id == Member.id, MemberValue.at_risk.is_(True)),
    ),
)
# Segments from the customer-value model's predictions (a member it has not scored is in none).
MODEL_SEGMENTS: dict[str, ColumnElement[bool]] = {"churn_risk": CHURN_RISK}
CONDITION_SEGMENTS: dict[str, ColumnElement[bool]] = {**RFM_SEGMENTS, **MODEL_SEGMENTS}
VALUE_SEGMENTS: tuple[str, ...] = tuple(tier.value for tier in ValueTier)
SEGMENTS: tuple[str, ...] = VALUE_SEGMENTS + tuple(CONDITION_SEGMENTS)
# Stages not offered as a choice: no chat to write to, or retired (consent is a flag now).
UNREACHABLE_STAGES = frozenset({LifecycleStage.UNREACHABLE}) | RETIRED_STAGES


class AudienceError(ValueError):
    """An audience spec that names no real audience."""


@dataclass(frozen=True, slots=True)
class Audience:
    """A validated audience spec."""

    kind: str
    value: str | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Audience:
        """Validate a spec dict; raises ``AudienceError`` for an unknown kind or value."""
        kind = spec.get("kind")
        value = spec.get("value")
        if kind not in KINDS:
            raise AudienceError(f"unknown audience kind {kind!r}")
        if kind == "all":
            return cls("all")
        if not isinstance(value, str) or not value or len(value) > 32:
            raise AudienceError(f"audience {kind!r} needs a value")
        if kind == "stage" and value not in set(LifecycleStage):
            raise AudienceError(f"unknown lifecycle stage {value!r}")
        if kind == "segment" and value not in SEGMENTS:
            raise AudienceError(f"unknown segment {value!r}")
        return cls(kind, value)

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value}


def base_conditions(*, marketing: bool = True) -> list[ColumnElement[bool]]:
    """Who can be reached at all: registered, not deleted, with a chat, not blocked."""
    conditions: list[ColumnElement[bool]] = [
        Member.status == MemberStatus.ACTIVE,
        Member.deleted_at.is_(None),
        Member.chat_id.is_not(None),
        Member.blocked_at.is_(None),
    ]
    if marketing:
        conditions.append(Member.marketing_opt_in.is_(True))
    return conditions


def audience_conditions(
    audience: Audience, *, marketing: bool = True
) -> list[ColumnElement[bool]]:
    """The WHERE clause of ``audience``: one indexed scan of the members table."""
    conditions = base_conditions(marketing=marketing)
    match audience.kind:
        case "tier":
            conditions.append(Member.tier_code == audience.value)
        case "stage":
            conditions.append(Member.lifecycle_stage == audience.value)
        case "segment" if audience.value in VALUE_SEGMENTS:
            conditions.append(Member.value_tier == audience.value)
        case "segment":
            conditions.append(CONDITION_SEGMENTS[str(audience.value)])
        case "interest":
            conditions.append(
                exists().where(
                    MemberInterest.member_id == Member.id,
                    MemberInterest.category == audience.value,
                )
            )
    return conditions


async def count_audience(
    session: AsyncSession, audience: Audience, *, marketing: bool = True
) -> int:
    """The exact number of members ``audience`` reaches now."""
    query = (
        select(func.count())
        .select_from(Member)
        .where(*audience_conditions(audience, marketing=marketing))
    )
    return int(await session.scalar(query) or 0)


async def sample_member(
    session: AsyncSession,
    audience: Audience,
    *,
    marketing: bool = True,
    locale: str | None = None,
) -> Member | None:
    """A real member of ``audience`` to preview a message for (the earliest to join), one
    who reads ``locale`` when given and there is one."""
    conditions = audience_conditions(audience, marketing=marketing)
    query = select(Member).order_by(Member.id).limit(1)
    if locale is not None:
        found = await session.scalar(query.where(*conditions, Member.locale == locale))
        if found is not None:
            return found
    return await session.scalar(query.where(*conditions))


async def count_by_locale(
    session: AsyncSession, audience: Audience, *, marketing: bool = True
) -> dict[str, int]:
    """How many members of ``audience`` read each language: ``{"zh": 120, "en": 8}``."""
    query = (
        select(Member.locale, func.count())
        .where(*audience_conditions(audience, marketing=marketing))
        .group_by(Member.locale)
    )
    return await _grouped(session, query)


async def count_by_timezone(
    session: AsyncSession, audience: Audience, *, marketing: bool = True
) -> dict[str | None, int]:
    """How many members of ``audience`` live in each time zone (None: not set)."""
    query = (
        select(Member.timezone, func.count())
        .where(*audience_conditions(audience, marketing=marketing))
        .group_by(Member.timezone)
    )
    return await _grouped(session, query)


async def member_batch(
    session: AsyncSession,
    audience: Audience,
    *,
    after_id: int,
    limit: int,
    marketing: bool = True,
) -> list[Member]:
    """The next ``limit`` members of ``audience`` with an id above ``after_id``, by id."""
    query = (
        select(Member)
        .where(*audience_conditions(audience, marketing=marketing), Member.id > after_id)
        .order_by(Member.id)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def iter_member_batches(
    session: AsyncSession,
    audience: Audience,
    *,
    batch_size: int = 500,
    after_id: int = 0,
    marketing: bool = True,
) -> AsyncIterator[list[Member]]:
    """Walk ``audience`` in id-ordered batches (keyset pagination: no OFFSET, flat memory)."""
    while True:
        batch = await member_batch(
            session, audience, after_id=after_id, limit=batch_size, marketing=marketing
        )
        if not batch:
            return
        yield batch
        after_id = batch[-1].id


@dataclass(frozen=True, slots=True)
class AudienceChoices:
    """What staff can pick from, with the number of reachable members behind each choice."""

    total: int
    tiers: list[tuple[str, str, str, int]]  # code, name_en, name_zh, members
    stages: list[tuple[str, int]]
    segments: list[tuple[str, int]]
    interests: list[tuple[str, int]]


async def audience_choices(
    session: AsyncSession, categories: tuple[str, ...], *, marketing: bool = True
) -> AudienceChoices:
    """Counts per tier, stage, segment and interest, in a handful of grouped queries."""
    base = base_conditions(marketing=marketing)
    total = int(await session.scalar(select(func.count()).select_from(Member).where(*base)) or 0)

    tier_counts = await _grouped(
        session,
        select(Member.tier_code, func.count()).where(*base).group_by(Member.tier_code),
    )
    tiers = [
        (tier.code, tier.name_en, tier.name_zh, int(tier_counts.get(tier.code, 0)))
        for tier in await session.scalars(select(Tier).order_by(Tier.rank))
    ]

    stage_counts = await _grouped(
        session,
        select(Member.lifecycle_stage, func.count()).where(*base).group_by(Member.lifecycle_stage),
    )
    stages = [
        (stage.value, int(stage_counts.get(stage.value, 0)))
        for stage in LifecycleStage
        if stage not in UNREACHABLE_STAGES
    ]

    value_counts = await _grouped(
        session,
        select(Member.value_tier, func.count()).where(*base).group_by(Member.value_tier),
    )
    condition_columns = [
        func.coalesce(func.sum(case((condition, 1), else_=0)), 0).label(name)
        for name, condition in CONDITION_SEGMENTS.items()
    ]
    condition_row = (await session.execute(select(*condition_columns).where(*base))).one()
    segments = [(name, int(value_counts.get(name, 0))) for name in VALUE_SEGMENTS]
    segments += [(name, int(condition_row[i] or 0)) for i, name in enumerate(CONDITION_SEGMENTS)]

    interest_counts = await _grouped(
        session,
        select(MemberInterest.category, func.count())
        .join(Member, Member.id == MemberInterest.member_id)
        .where(*base, MemberInterest.category.in_(categories))
        .group_by(MemberInterest.category),
    )
    interests = [(category, int(interest_counts.get(category, 0))) for category in categories]
    return AudienceChoices(total, tiers, stages, segments, interests)


async def _grouped(session: AsyncSession, query: Select[_Key, int]) -> dict[_Key, int]:
    """``{key: count}`` from a ``SELECT key, count(*) … GROUP BY key``."""
    return {key: int(count) for key, count in await session.execute(query)}
