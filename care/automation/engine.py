"""The care engine: for each rule, who is due now, and what they get.

One pass over a rule:

1. **Find** the members whose occasion fell due in the rule's window — from the end of its last
   completed pass (``job_state``) up to now, never further back than the rule's ``max_late`` —
   and that the rule has not touched for that occasion. One set-based query per trigger over
   an indexed column (the members table carries the aggregates and segments; purchases,
   coupons and tickets are reached through their time indexes) returns just ids and facts.
   After downtime the next pass covers the whole gap once; a second pass finds nothing new.
2. **Guard** (per batch of loaded members): marketing needs consent and reachability (already
   in the query), no unresolved complaint or low score, and room under the frequency cap
   (``care.messaging.guardrails``). A blocked member is not decided and the occasion is not
   replayed.
3. **Claim** each (rule, member, occasion) by inserting a ``CareTouch`` — the unique index
   decides, so overlapping runs and replicas never decide the same occasion twice — and split
   the arm: a deterministic ``config.holdout_pct`` of members is held out of holdout rules.
4. **Act** for the treatment arm: issue the rule's coupons (or points), create the survey
   invitations, render the template in each member's language, and queue the messages through
   the outbox (quiet hours are applied there). The held-out arm gets the touch and nothing else.

Each batch is its own short transaction when ``commit`` is on (the scheduler), retried when
SQLite is busy; a dry run keeps everything in one transaction and rolls back.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    cast,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased, raiseload

from care.automation.rules import (
    BIRTHDAY_HOUR,
    NEAR_TIER_PCT,
    Audience,
    Rule,
    Trigger,
    scheduled_rules,
)
from care.conversations import surveys
from care.core.clock import Clock
from care.core.codes import display_code, random_code
from care.core.config import CareConfig
from care.core.i18n import LOCALES, translator
from care.core.money import format_money
from care.core.quiet_hours import member_zone
from care.core.templates import member_context, render_rule
from care.loyalty.coupons import issue_coupon
from care.loyalty.offers import coupon_expiry, describe_offer, offer_usable, rule_offer
from care.loyalty.points import add_points
from care.loyalty.tiers import tier_name
from care.messaging.guardrails import in_holdout, marketing_blocks
from care.messaging.outbox import OutboxItem, enqueue_many
from storage.enums import (
    HoldoutArm,
    LifecycleStage,
    MemberStatus,
    OfferKind,
    PointsReason,
    TicketKind,
    TicketStatus,
)
from storage.models import (
    CareTouch,
    Coupon,
    JobState,
    Member,
    Offer,
    OutboxMessage,
    Purchase,
    SurveyInvitation,
    Ticket,
    Tier,
)
from storage.repos.upsert import insert_ignoring_conflicts

log = logging.getLogger(__name__)

BATCH_SIZE = 500
MAX_YEARS = 30
# Upgrades happen when a purchase is recorded; a tier change at that instant was an upgrade.
UPGRADE_TOLERANCE = timedelta(minutes=5)
LOCK_RETRIES = 5
SURVEY_TTL = timedelta(days=7)


@dataclass(slots=True)
class Candidate:
    """A member due for a rule on one occasion, with the facts its message needs."""

    member: Member
    occasion: str
    due_at: datetime
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the engine decided for one member: for the dry run and the logs."""

    rule: str
    member_id: int
    member_code: str
    name: str | None
    locale: str
    occasion: str
    arm: str
    text: str | None = None
    not_before: datetime | None = None


@dataclass(slots=True)
class RuleOutcome:
    """What one pass of one rule did."""

    rule: str
    due: int = 0
    sent: int = 0
    held_out: int = 0
    already_decided: int = 0
    blocked: Counter[str] = field(default_factory=Counter)
    decisions: list[Decision] = field(default_factory=list)
    error: str | None = None

    @property
    def decided(self) -> int:
        return self.sent + self.held_out


def touch_key(rule: str, member_id: int, occasion: str) -> str:
    """The outbox idempotency key of a rule's message: (rule, member, occasion)."""
    return f"rule:{rule}:{member_id}:{occasion}"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%S")


def add_years(value: datetime, years: int) -> datetime:
    """The same calendar moment ``years`` later (29 February becomes 28 February)."""
    try:
        return value.replace(year=value.year + years)
    except ValueError:
        return value.replace(year=value.year + years, day=28)


def _touched_since(rule: Rule, since: ColumnElement[Any] | datetime) -> ColumnElement[bool]:
    """This rule touched the member at or after ``since``."""
    return exists().where(
        CareTouch.rule == rule.name,
        CareTouch.member_id == Member.id,
        CareTouch.decided_at >= since,
    )


def _touched_occasion(rule: Rule, occasion: ColumnElement[Any]) -> ColumnElement[bool]:
    return exists().where(
        CareTouch.rule == rule.name,
        CareTouch.member_id == Member.id,
        CareTouch.occasion == occasion,
    )


def _reachable(rule: Rule) -> list[ColumnElement[bool]]:
    # Not ``status``: nearly every member is active, and SQLite would walk that index instead
    # of the trigger's; the status is checked on the loaded rows (``_RulePass.candidate``).
    conditions: list[ColumnElement[bool]] = [
        Member.deleted_at.is_(None),
        Member.blocked_at.is_(None),
        Member.chat_id.is_not(None),
    ]
    if rule.is_marketing:
        conditions.append(Member.marketing_opt_in.is_(True))
    if rule.survey is not None:
        conditions.append(Member.surveys_opt_in.is_(True))
    return conditions


# The NPS audience; checked on the loaded rows, so that SQLite walks the registered_at ranges
# instead of every active member.
_ACTIVE_STAGES = frozenset({LifecycleStage.ACTIVE, LifecycleStage.WON_BACK})


# Triggers whose rows are marked when decided (referral_rewarded_at, expiry_reminded_at).
_MARKED_TRIGGERS = frozenset({Trigger.REFERRAL, Trigger.COUPON_EXPIRY})


class _RulePass:
    """The query and the facts of one rule's trigger, for one moment ``now``."""

    def __init__(
        self,
        session: AsyncSession,
        config: CareConfig,
        rule: Rule,
        now: datetime,
        since: datetime | None = None,
    ) -> None:
        self.session = session
        self.config = config
        self.rule = rule
        self.now = now
        # Occasions due in (window_start, now]: since the last pass, and never staler than
        # the rule allows (a birthday greeting two days late is worse than none).
        oldest = now - rule.max_late
        self.window_start = oldest if since is None else min(max(oldest, since), now)
        if rule.trigger in _MARKED_TRIGGERS:
            # These occasions carry their own "done" mark, and their trigger time may be set
            # in the past (a purchase entered late): look back the whole allowance every time.
            self.window_start = oldest
        self.tiers: list[Tier] = []
        self.offer: Offer | None = None
        # How long the oldest member has been one: bounds the anniversaries worth asking about.
        self.membership_span = timedelta(0)

    async def prepare(self) -> None:
        """Load what the query and the candidates need (tiers, the oldest membership)."""
        if self.rule.trigger in (Trigger.TIER_UPGRADE, Trigger.NEAR_NEXT_TIER):
            self.tiers = list(await self.session.scalars(select(Tier).order_by(Tier.rank)))
        if self.rule.trigger in (Trigger.ANNIVERSARY, Trigger.NPS_CYCLE):
            first = await self.session.scalar(select(func.min(Member.registered_at)))
            self.membership_span = self.now - first if first is not None else timedelta(0)

    def query(self) -> Select[Any]:
        """Rows of (member id, *trigger facts) for every member due in the window."""
        builder: Callable[[], Select[Any]] = getattr(self, f"_q_{self.rule.trigger.value}")
        return builder().where(*_reachable(self.rule))

    def _due_range(self, column: Any, delay: timedelta | None = None) -> list[Any]:
        delay = self.rule.delay if delay is None else delay
        return [column > self.window_start - delay, column <= self.now - delay]

    def _repeat_guard(self) -> list[ColumnElement[bool]]:
        if self.rule.repeat_after is None:
            return []
        return [~_touched_since(self.rule, self.now - self.rule.repeat_after)]

    def _q_joined(self) -> Select[Any]:
        statement = select(Member.id).where(
            *self._due_range(Member.registered_at),
            ~exists().where(CareTouch.rule == self.rule.name, CareTouch.member_id == Member.id),
        )
        return statement

    def _q_purchase(self) -> Select[Any]:
        occasion = literal("purchase:") + cast(Purchase.id, String)
        statement = (
            select(Member.id, Purchase.id, Purchase.purchased_at)
            .join(Purchase, Purchase.member_id == Member.id)
            .where(
                *self._due_range(Purchase.purchased_at),
                ~_touched_occasion(self.rule, occasion),
                *self._repeat_guard(),
            )
        )
        return statement

    def _q_birthday(self) -> Select[Any]:
        days = [(self.now + timedelta(days=offset)).date() for offset in (-1, 0, 1)]
        month_days = {day.month * 100 + day.day for day in days}
        if any(_is_leap_stand_in(day) for day in days):
            month_days.add(229)
        statement = select(Member.id).where(
            Member.birthday_md.in_(sorted(month_days)),
            ~_touched_since(self.rule, self.now - timedelta(days=300)),
        )
        return statement

    def _q_stage(self, stage: LifecycleStage) -> Select[Any]:
        statement = select(Member.id).where(
            Member.lifecycle_stage == stage,
            *self._due_range(Member.stage_changed_at),
            ~_touched_since(self.rule, Member.stage_changed_at),
        )
        return statement

    def _q_at_risk(self) -> Select[Any]:
        return self._q_stage(LifecycleStage.AT_RISK)

    def _q_lapsed(self) -> Select[Any]:
        return self._q_stage(LifecycleStage.LAPSED)

    def _q_coupon_expiry(self) -> Select[Any]:
        # Due ``delay`` before expiry, for a coupon held at least that long already.
        statement = (
            select(Member.id, Coupon.id, Coupon.expires_at)
            .join(Coupon, Coupon.member_id == Member.id)
            .where(
                Coupon.expires_at > self.now,
                Coupon.expires_at > self.window_start + self.rule.delay,
                Coupon.expires_at <= self.now + self.rule.delay,
                Coupon.redeemed_at.is_(None),
                Coupon.expiry_reminded_at.is_(None),
                Coupon.issued_at <= self.now - self.rule.delay,
            )
        )
        return statement

    def _anniversaries(self, period: Callable[[int], datetime], count: int) -> list[Any]:
        return [
            and_(
                Member.registered_at > period(k) - (self.now - self.window_start),
                Member.registered_at <= period(k),
            )
            for k in range(1, count + 1)
        ]

    def _q_anniversary(self) -> Select[Any]:
        years = min(MAX_YEARS, self.membership_span.days // 365 + 1)
        ranges = self._anniversaries(lambda k: add_years(self.now, -k), years)
        statement = select(Member.id).where(
            or_(*ranges), ~_touched_since(self.rule, self.now - timedelta(days=300))
        )
        return statement

    def _q_nps_cycle(self) -> Select[Any]:
        cycles = self.membership_span // self.rule.delay + 1
        ranges = self._anniversaries(lambda k: self.now - self.rule.delay * k, cycles)
        statement = select(Member.id).where(or_(*ranges), *self._repeat_guard())
        return statement

    def _q_tier_upgrade(self) -> Select[Any]:
        base = self.tiers[0].code if self.tiers else "member"
        statement = select(Member.id).where(
            Member.tier_code != base,
            *self._due_range(Member.tier_changed_at),
            ~_touched_since(self.rule, Member.tier_changed_at),
        )
        return statement

    def _q_near_next_tier(self) -> Select[Any]:
        # The recent buyers (last_purchase_at's index) who spent at least the lowest "close"
        # floor; which tier each is close to is decided on the loaded row.
        floors = [_near_floor(tier) for tier in self.tiers[1:]]
        statement = select(Member.id).where(
            Member.spend_12m_minor >= min(floors) if floors else false(),
            *self._due_range(Member.last_purchase_at),
            *self._repeat_guard(),
        )
        return statement

    def _q_referral(self) -> Select[Any]:
        friend = aliased(Member, name="friend")
        statement = (
            select(Member.id, friend.id, friend.member_code)
            .join(friend, friend.referrer_id == Member.id)
            .where(
                *self._due_range(friend.first_purchase_at),
                friend.referral_rewarded_at.is_(None),
            )
        )
        return statement

    def _q_complaint_closed(self) -> Select[Any]:
        occasion = literal("ticket:") + cast(Ticket.id, String)
        statement = (
            select(Member.id, Ticket.id, Ticket.closed_at)
            .join(Ticket, Ticket.member_id == Member.id)
            .where(
                Ticket.kind == TicketKind.COMPLAINT,
                Ticket.status == TicketStatus.CLOSED,
                *self._due_range(Ticket.closed_at),
                ~_touched_occasion(self.rule, occasion),
            )
        )
        return statement

    def _q_low_score(self) -> Select[Any]:  # pragma: no cover
        raise RuntimeError("low scores alert staff when they are answered, not on a schedule")

    async def keep(self, batch: list[Candidate]) -> list[Candidate]:
        """Checks that need a second look at other tables, done once per batch."""
        if self.rule.trigger != Trigger.TIER_UPGRADE or not batch:
            return batch
        # Upgrades happen as a purchase is recorded; a tier change with no purchase recorded
        # at that moment was a downgrade by the segment refresh, which deserves no party.
        recorded = await self.session.execute(
            select(Purchase.member_id, Purchase.created_at).where(
                Purchase.member_id.in_([c.member.id for c in batch]),
                Purchase.created_at > self.window_start - UPGRADE_TOLERANCE,
            )
        )
        times: dict[int, list[datetime]] = {}
        for member_id, created_at in recorded:
            times.setdefault(member_id, []).append(created_at)
        return [
            c
            for c in batch
            if any(abs(t - c.due_at) <= UPGRADE_TOLERANCE for t in times.get(c.member.id, ()))
        ]

    # ------------------------------------------------------------------ rows → candidates
    def candidate(self, row: Sequence[Any]) -> Candidate | None:
        member: Member = row[0]
        if member.status != MemberStatus.ACTIVE:
            return None
        if (
            self.rule.audience == Audience.ACTIVE_SURVEY_TAKERS
            and member.lifecycle_stage not in _ACTIVE_STAGES
        ):
            return None
        trigger = self.rule.trigger
        delay = self.rule.delay
        if trigger == Trigger.JOINED:
            assert member.registered_at is not None
            return Candidate(member, "joined", member.registered_at + delay)
        if trigger == Trigger.PURCHASE:
            purchase_id, purchased_at = row[1], row[2]
            return Candidate(
                member, f"purchase:{purchase_id}", purchased_at + delay,
                {"purchase_id": purchase_id, "purchased_at": purchased_at},
            )  # fmt: skip
        if trigger == Trigger.BIRTHDAY:
            return self._birthday(member)
        if trigger in (Trigger.AT_RISK, Trigger.LAPSED):
            assert member.stage_changed_at is not None
            changed = member.stage_changed_at
            return Candidate(member, f"{member.lifecycle_stage}:{_iso(changed)}", changed)
        if trigger == Trigger.COUPON_EXPIRY:
            return Candidate(member, f"coupon:{row[1]}", row[2] - delay, {"coupon_id": row[1]})
        if trigger == Trigger.ANNIVERSARY:
            return self._anniversary(member)
        if trigger == Trigger.NPS_CYCLE:
            return self._nps_cycle(member)
        if trigger == Trigger.TIER_UPGRADE:
            assert member.tier_changed_at is not None
            occasion = f"{member.tier_code}:{_iso(member.tier_changed_at)}"
            return Candidate(member, occasion, member.tier_changed_at)
        if trigger == Trigger.NEAR_NEXT_TIER:
            return self._near_next_tier(member)
        if trigger == Trigger.REFERRAL:
            return Candidate(
                member, f"friend:{row[1]}", self.now,
                {"friend_id": row[1], "friend_code": row[2]},
            )  # fmt: skip
        if trigger == Trigger.COMPLAINT_CLOSED:
            return Candidate(member, f"ticket:{row[1]}", row[2] + delay, {"ticket_id": row[1]})
        raise AssertionError(trigger)

    def _birthday(self, member: Member) -> Candidate | None:
        if member.birthday_md is None:
            return None
        zone = member_zone(member.timezone or self.config.default_timezone)
        today = self.now.astimezone(zone).date()
        for day in (today, today - timedelta(days=1)):
            if _birthday_falls_on(member.birthday_md, day):
                due = datetime.combine(day, time(BIRTHDAY_HOUR), zone).astimezone(UTC)
                if self.window_start < due <= self.now:
                    return Candidate(member, f"{day.year}", due)
        return None

    def _anniversary(self, member: Member) -> Candidate | None:
        assert member.registered_at is not None
        for years in range(1, MAX_YEARS + 1):
            due = add_years(member.registered_at, years)
            if due > self.now:
                return None
            if due > self.window_start:
                return Candidate(member, f"year:{years}", due, {"years": years})
        return None

    def _nps_cycle(self, member: Member) -> Candidate | None:
        assert member.registered_at is not None
        cycle = int((self.now - member.registered_at) / self.rule.delay)
        due = member.registered_at + self.rule.delay * cycle
        if cycle < 1 or due <= self.window_start:
            return None
        return Candidate(member, f"cycle:{cycle}", due)

    def _near_next_tier(self, member: Member) -> Candidate | None:
        ranks = [tier.code for tier in self.tiers]
        if member.tier_code not in ranks or member.last_purchase_at is None:
            return None
        index = ranks.index(member.tier_code)
        if index + 1 >= len(self.tiers):
            return None
        following = self.tiers[index + 1]
        if not _near_floor(following) <= member.spend_12m_minor < following.min_spend_12m_minor:
            return None
        remaining = following.min_spend_12m_minor - member.spend_12m_minor
        occasion = f"{following.code}:{member.last_purchase_at.date().isoformat()}"
        return Candidate(
            member, occasion, member.last_purchase_at + self.rule.delay,
            {"next_tier": following, "remaining_minor": remaining},
        )  # fmt: skip


def _near_floor(tier: Tier) -> int:
    """The 12-month spend from which a member counts as close to ``tier``."""
    return tier.min_spend_12m_minor * (100 - NEAR_TIER_PCT) // 100


def _is_leap_stand_in(day: date) -> bool:
    """28 February of a common year stands in for a 29 February birthday."""
    return day.month == 2 and day.day == 28 and not _is_leap(day.year)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _birthday_falls_on(birthday_md: int, day: date) -> bool:
    if birthday_md == day.month * 100 + day.day:
        return True
    return birthday_md == 229 and _is_leap_stand_in(day)


# ---------------------------------------------------------------------- claiming


async def _claim(
    session: AsyncSession, rule: Rule, config: CareConfig, now: datetime, batch: list[Candidate]
) -> dict[tuple[int, str], tuple[int, str]]:
    """Insert the touches; (member, occasion) → (touch id, arm) for those this pass won."""
    rows = [
        {
            "rule": rule.name,
            "member_id": c.member.id,
            "occasion": c.occasion,
            "arm": (
                HoldoutArm.HOLDOUT
                if rule.holdout and in_holdout(rule.name, c.member.id, config.holdout_pct)
                else HoldoutArm.TREATMENT
            ).value,
            "decided_at": now,
        }
        for c in batch
    ]
    if not rows:
        return {}
    won: dict[tuple[int, str], tuple[int, str]] = {}
    claim = insert_ignoring_conflicts(session, CareTouch, ["rule", "member_id", "occasion"])
    if claim is not None:
        statement = claim.returning(
            CareTouch.id, CareTouch.member_id, CareTouch.occasion, CareTouch.arm
        )
        for touch_id, member_id, occasion, arm in await session.execute(statement, rows):
            won[(member_id, occasion)] = (touch_id, arm)
        return won
    for row in rows:  # any other backend: one savepoint per touch
        try:
            async with session.begin_nested():
                touch_id = await session.scalar(
                    insert(CareTouch).values(**row).returning(CareTouch.id)
                )
        except IntegrityError:
            continue
        assert touch_id is not None
        won[(row["member_id"], row["occasion"])] = (touch_id, row["arm"])
    return won


# ---------------------------------------------------------------------- acting


class _Actor:
    """Turns won treatment touches into coupons, surveys, rendered texts and outbox rows."""

    def __init__(
        self, session: AsyncSession, config: CareConfig, clock: Clock, rule: Rule, rp: _RulePass
    ) -> None:
        self.session = session
        self.config = config
        self.clock = clock
        self.rule = rule
        self.rp = rp

    async def offer_available(self) -> bool:
        if self.rule.offer is None:
            return True
        offer = await rule_offer(self.session, self.clock, self.config, self.rule.offer)
        self.rp.offer = offer
        return offer_usable(offer, self.clock.now())

    def _coupon_facts(self, coupon: Coupon, offer: Offer, locale: str, tz: str) -> dict[str, Any]:
        expires = None
        if coupon.expires_at is not None:
            expires = coupon.expires_at.astimezone(member_zone(tz)).date().isoformat()
        return {
            "code": display_code(coupon.code),
            "offer": describe_offer(offer, translator(locale)),
            "expires": expires,
        }

    async def batch_facts(self, batch: list[Candidate]) -> None:
        """Facts a whole batch needs, loaded or written with one statement each."""
        ids = [c.member.id for c in batch]
        offer = self.rp.offer
        if offer is not None and offer.kind != OfferKind.POINTS:
            coupons = await self._issue_coupons(offer, ids)
            for c in batch:
                c.facts["new_coupon"] = coupons[c.member.id]
        if self.rule.survey is not None:
            await self._create_invitations(batch)
        if self.rule.name == "welcome_followup":
            waiting = set(
                await self.session.scalars(
                    select(Coupon.member_id).where(
                        Coupon.member_id.in_(ids),
                        Coupon.source == "rule:welcome",
                        Coupon.redeemed_at.is_(None),
                        or_(Coupon.expires_at.is_(None), Coupon.expires_at > self.clock.now()),
                    )
                )
            )
            for c in batch:
                c.facts["coupon_waiting"] = c.member.id in waiting
                c.facts["purchase_count"] = c.member.purchase_count or 0
        if self.rule.trigger == Trigger.COUPON_EXPIRY:
            coupons = {
                coupon.id: coupon
                for coupon in await self.session.scalars(
                    select(Coupon).where(Coupon.id.in_([c.facts["coupon_id"] for c in batch]))
                )
            }
            for c in batch:
                c.facts["coupon_row"] = coupons[c.facts["coupon_id"]]

    async def _issue_coupons(self, offer: Offer, member_ids: list[int]) -> dict[int, Coupon]:
        """One coupon of ``offer`` per member, inserted with one statement.

        The same coupons ``issue_coupon`` makes; if a random code ever collides, the
        batch falls back to it, coupon by coupon, which retries the code.
        """
        now = self.clock.now()
        expires_at = coupon_expiry(offer, now)
        source = f"rule:{self.rule.name}"[:32]
        rows = [
            {
                "offer_id": offer.id,
                "member_id": member_id,
                "code": random_code(),
                "source": source,
                "issued_at": now,
                "expires_at": expires_at,
            }
            for member_id in member_ids
        ]
        try:
            async with self.session.begin_nested():
                await self.session.execute(insert(Coupon), rows)
        except IntegrityError:
            issued = [
                await issue_coupon(
                    self.session, self.clock, member_id=member_id, offer=offer, source=source
                )
                for member_id in member_ids
            ]
            return {coupon.member_id: coupon for coupon in issued}
        # Detached copies carry what the message shows; the rows are in the database.
        return {row["member_id"]: Coupon(**row) for row in rows}

    async def _create_invitations(self, batch: list[Candidate]) -> None:
        """The survey invitations of a batch, as ``surveys.create_invitation`` makes them,
        inserted with one statement."""
        now = self.clock.now()
        assert self.rule.survey is not None
        rows = [
            {
                "member_id": c.member.id,
                "kind": str(self.rule.survey),
                "nonce": secrets.token_urlsafe(9),
                "purchase_id": c.facts.get("purchase_id"),
                "created_at": now,
                "expires_at": now + SURVEY_TTL,
            }
            for c in batch
        ]
        statement = insert(SurveyInvitation).returning(SurveyInvitation.id, SurveyInvitation.nonce)
        ids = {
            nonce: invitation_id
            for invitation_id, nonce in await self.session.execute(statement, rows)
        }
        for c, row in zip(batch, rows, strict=True):
            c.facts["invitation"] = SurveyInvitation(id=ids[row["nonce"]], **row)

    async def act(self, candidate: Candidate) -> OutboxItem:
        member = candidate.member
        locale = member.locale if member.locale in LOCALES else self.config.default_locale
        tz = member.timezone or self.config.default_timezone
        facts = dict(candidate.facts)
        reply_markup: dict[str, Any] | None = None
        offer = self.rp.offer
        if offer is not None and offer.kind == OfferKind.POINTS:
            facts["points"] = await add_points(
                self.session, self.clock, member_id=member.id, delta=offer.value,
                reason=PointsReason.REFERRAL, note=f"friend {facts.get('friend_code', '')}"[:200],
            )  # fmt: skip
            facts["reward_points"] = offer.value
            facts["coupon"] = None
        elif offer is not None:
            coupon = facts.pop("new_coupon")
            facts["coupon"] = self._coupon_facts(coupon, offer, locale, tz)
        elif self.rule.trigger == Trigger.REFERRAL:
            facts.setdefault("reward_points", 0)
            facts.setdefault("coupon", None)
        if self.rule.trigger == Trigger.COUPON_EXPIRY:
            coupon = facts.pop("coupon_row")
            facts["coupon"] = self._coupon_facts(coupon, coupon.offer, locale, tz)
        if self.rule.trigger == Trigger.PURCHASE:
            facts["purchase_day"] = (
                facts["purchased_at"].astimezone(member_zone(tz)).date().isoformat()
            )
        if self.rule.trigger in (Trigger.TIER_UPGRADE, Trigger.NEAR_NEXT_TIER):
            self._tier_facts(member, locale, facts)
        if self.rule.survey is not None:
            reply_markup = surveys.invitation_markup(facts.pop("invitation"), locale)
        context = member_context(member, self.config, **_template_facts(facts))
        text = render_rule(self.rule.template or self.rule.name, locale, context)
        assert member.chat_id is not None
        return OutboxItem(
            key=touch_key(self.rule.name, member.id, candidate.occasion),
            chat_id=member.chat_id,
            text=text,
            kind=self.rule.kind,
            member_id=member.id,
            timezone=tz,
            rule=self.rule.name,
            reply_markup=reply_markup,
        )

    def _tier_facts(self, member: Member, locale: str, facts: dict[str, Any]) -> None:
        current = next((t for t in self.rp.tiers if t.code == member.tier_code), None)
        if current is not None:
            facts["tier"] = tier_name(current, locale)
            facts["multiplier_pct"] = current.points_multiplier_pct
            facts["multiplier"] = _multiplier(current.points_multiplier_pct)
        following: Tier | None = facts.pop("next_tier", None)
        if following is not None:
            facts["next_tier"] = tier_name(following, locale)
            facts["next_multiplier_pct"] = following.points_multiplier_pct
            facts["next_multiplier"] = _multiplier(following.points_multiplier_pct)
            facts["remaining"] = format_money(facts.pop("remaining_minor"), self.config.currency)


def _multiplier(pct: int) -> str:
    return f"{pct / 100:g}"


def _template_facts(facts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in facts.items() if not isinstance(v, datetime)}


# ---------------------------------------------------------------------- the pass


async def evaluate_rule(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    rule: Rule,
    *,
    since: datetime | None = None,
    commit: bool = True,
    collect: bool = False,
    batch_size: int = BATCH_SIZE,
) -> RuleOutcome:
    """Decide every member due for ``rule`` now; queue the treatment arm's messages.

    With ``commit`` each batch commits on its own (the scheduler's mode, with a retry when the
    database is busy); without it nothing is committed and the caller decides (the dry run rolls
    back). ``collect`` keeps a ``Decision`` per member, with the text, for printing.
    """
    outcome = RuleOutcome(rule.name)
    now = clock.now()
    rp = _RulePass(session, config, rule, now, since)
    await rp.prepare()
    actor = _Actor(session, config, clock, rule, rp)
    if not await actor.offer_available():
        outcome.error = f"offer {rule.offer!r} is switched off or over"
        log.warning("care rule %s skipped: %s", rule.name, outcome.error)
        return outcome
    statement = rp.query()
    # Phase one finds who is due: ids and trigger facts only, through the trigger's index.
    # Phase two loads and decides them in batches, each its own short transaction.
    due = (await session.execute(statement)).all()
    if commit:
        await session.commit()
    for start in range(0, len(due), batch_size):
        rows = due[start : start + batch_size]
        for attempt in range(LOCK_RETRIES if commit else 1):
            try:
                await _run_batch(session, config, clock, rule, rp, actor, rows, outcome, collect)
                if commit:
                    await session.commit()
                break
            except (OperationalError, DBAPIError) as exc:
                await session.rollback()
                if not commit or attempt == LOCK_RETRIES - 1 or not _is_contention(exc):
                    raise
                await asyncio.sleep(0.05 * 2**attempt)
                # The rollback expired what the pass had loaded: load it again.
                await rp.prepare()
                await actor.offer_available()
        session.expunge_all()
    if commit:
        await _mark_covered(session, rule, now)
    return outcome


def coverage_name(rule: Rule) -> str:
    """The ``job_state`` row that remembers up to when ``rule`` has been evaluated."""
    return f"care.rule.{rule.name}"


async def covered_until(session: AsyncSession, rule: Rule) -> datetime | None:
    """When the last completed pass of ``rule`` ran (None: never)."""
    return await session.scalar(
        select(JobState.covered_until).where(JobState.name == coverage_name(rule))
    )


async def _mark_covered(session: AsyncSession, rule: Rule, now: datetime) -> None:
    for attempt in range(LOCK_RETRIES):
        try:
            state = await session.get(JobState, coverage_name(rule))
            if state is None:
                try:
                    async with session.begin_nested():
                        session.add(JobState(name=coverage_name(rule)))
                except IntegrityError:  # a concurrent pass created it
                    pass
                state = await session.get_one(JobState, coverage_name(rule))
            if state.covered_until is None or state.covered_until < now:
                state.covered_until = now
            state.last_run_at = now
            await session.commit()
            return
        except (OperationalError, DBAPIError) as exc:
            await session.rollback()
            if attempt == LOCK_RETRIES - 1 or not _is_contention(exc):
                raise
            await asyncio.sleep(0.05 * 2**attempt)


def _is_contention(exc: DBAPIError) -> bool:
    text = str(exc.orig if exc.orig is not None else exc).lower()
    return any(word in text for word in ("locked", "busy", "serializ", "deadlock"))


async def _run_batch(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    rule: Rule,
    rp: _RulePass,
    actor: _Actor,
    rows: Sequence[Any],
    outcome: RuleOutcome,
    collect: bool,
) -> None:
    """One batch of due rows: load the members, guard, claim, act."""
    ids = list({row[0] for row in rows})
    members = {
        member.id: member
        for member in await session.scalars(
            select(Member).where(Member.id.in_(ids)).options(raiseload(Member.interests))
        )
    }
    seen: set[int] = set()
    batch: list[Candidate] = []
    for row in rows:
        member = members.get(row[0])
        candidate = rp.candidate((member, *row[1:])) if member is not None else None
        # One occasion per member per pass: two purchases in the window get one survey.
        if candidate is None or candidate.member.id in seen:
            continue
        seen.add(candidate.member.id)
        batch.append(candidate)
    batch = await rp.keep(batch)
    outcome.due += len(batch)
    if rule.is_marketing and batch:
        blocks = await marketing_blocks(session, config, clock, [c.member for c in batch])
        outcome.blocked.update(blocks.values())
        batch = [c for c in batch if c.member.id not in blocks]
    won = await _claim(session, rule, config, rp.now, batch)
    outcome.already_decided += len(batch) - len(won)
    treated: list[Candidate] = []
    for c in batch:
        claim = won.get((c.member.id, c.occasion))
        if claim is None:
            continue
        if claim[1] == HoldoutArm.HOLDOUT:
            outcome.held_out += 1
            if collect:
                outcome.decisions.append(_decision(rule, c, HoldoutArm.HOLDOUT))
        else:
            treated.append(c)
    await _side_effects(
        session, rule, rp.now, [c for c in batch if (c.member.id, c.occasion) in won]
    )
    if treated:
        await actor.batch_facts(treated)
        items = [await actor.act(c) for c in treated]
        await enqueue_many(session, clock, config, items)
        queued = await _link_outbox(session, rule, won, treated, items)
        outcome.sent += len(treated)
        if collect:
            for c, item in zip(treated, items, strict=True):
                outcome.decisions.append(
                    _decision(rule, c, HoldoutArm.TREATMENT, item.text, queued.get(item.key))
                )


async def _side_effects(
    session: AsyncSession, rule: Rule, now: datetime, decided: list[Candidate]
) -> None:
    """Marks that belong to the occasion whichever arm the member is in."""
    if not decided:
        return
    if rule.trigger == Trigger.COUPON_EXPIRY:
        await session.execute(
            update(Coupon)
            .where(Coupon.id.in_([c.facts["coupon_id"] for c in decided]))
            .values(expiry_reminded_at=now)
        )
    if rule.trigger == Trigger.REFERRAL:
        await session.execute(
            update(Member)
            .where(Member.id.in_([c.facts["friend_id"] for c in decided]))
            .values(referral_rewarded_at=now)
            .execution_options(synchronize_session=False)
        )


async def _link_outbox(
    session: AsyncSession,
    rule: Rule,
    won: dict[tuple[int, str], tuple[int, str]],
    treated: list[Candidate],
    items: list[OutboxItem],
) -> dict[str, datetime]:
    """Point each touch at its outbox row; returns key → the time the message may go."""
    keys = [item.key for item in items]
    found = {
        key: (outbox_id, not_before)
        for key, outbox_id, not_before in await session.execute(
            select(
                OutboxMessage.idempotency_key, OutboxMessage.id, OutboxMessage.not_before
            ).where(OutboxMessage.idempotency_key.in_(keys))
        )
    }
    links = []
    for c, item in zip(treated, items, strict=True):
        if item.key in found:
            links.append(
                {"id": won[(c.member.id, c.occasion)][0], "outbox_id": found[item.key][0]}
            )
    if links:
        await session.execute(update(CareTouch), links)
    return {key: value[1] for key, value in found.items()}


def _decision(
    rule: Rule,
    c: Candidate,
    arm: str,
    text: str | None = None,
    not_before: datetime | None = None,
) -> Decision:
    return Decision(
        rule=rule.name, member_id=c.member.id, member_code=c.member.member_code,
        name=c.member.name, locale=c.member.locale, occasion=c.occasion, arm=str(arm),
        text=text, not_before=not_before,
    )  # fmt: skip


async def evaluate(
    session_factory: async_sessionmaker[AsyncSession],
    config: CareConfig,
    clock: Clock,
    *,
    only: str | None = None,
) -> list[RuleOutcome]:
    """One evaluation pass over every enabled scheduled rule (or just ``only``), committing.

    Each rule covers the occasions due since its last completed pass (``job_state``), at most
    ``max_late`` back: after downtime the next pass catches up once. A rule that fails is
    logged and reported in its outcome, keeps its window for the next pass, and the other
    rules still run.
    """
    outcomes = []
    for rule in scheduled_rules(config, only):
        async with session_factory() as session:
            try:
                since = await covered_until(session, rule)
                outcome = await evaluate_rule(session, config, clock, rule, since=since)
            except Exception as exc:  # one broken rule must not stop the others
                log.exception("care rule %s failed", rule.name)
                await session.rollback()
                outcome = RuleOutcome(rule.name, error=f"{type(exc).__name__}: {exc}")
        outcomes.append(outcome)
        if outcome.decided:
            log.info(
                "care rule %s: %d sent, %d held out, blocked %s",
                rule.name, outcome.sent, outcome.held_out, dict(outcome.blocked),
            )  # fmt: skip
    return outcomes


async def plan(
    session_factory: async_sessionmaker[AsyncSession],
    config: CareConfig,
    clock: Clock,
    *,
    only: str | None = None,
) -> list[RuleOutcome]:
    """The dry run: what a pass at ``clock.now()`` would decide, with every text; nothing kept.

    The pass runs for real inside one transaction that is rolled back, so coupons, survey
    invitations, touches and outbox rows it would create are never committed.
    """
    outcomes = []
    async with session_factory() as session:
        try:
            for rule in scheduled_rules(config, only):
                since = await covered_until(session, rule)
                outcomes.append(
                    await evaluate_rule(
                        session, config, clock, rule, since=since, commit=False, collect=True
                    )
                )
        finally:
            await session.rollback()
    return outcomes


__all__ = [
    "Candidate",
    "Decision",
    "RuleOutcome",
    "add_years",
    "evaluate",
    "evaluate_rule",
    "plan",
    "touch_key",
]
