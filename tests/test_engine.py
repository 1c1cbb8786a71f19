"""The care engine, rule by rule, with a clock moved through the days.

Every test evaluates against a real SQLite database: the rule fires at the right (local) time,
once; guardrails hold; the holdout gets a touch and nothing else; a dry run keeps nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.automation import engine
from care.automation.engine import RuleOutcome
from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.loyalty.coupons import issue_coupon
from care.loyalty.offers import rule_offer
from care.loyalty.purchases import record_purchase
from storage.db import create_engine, create_session_factory
from storage.enums import LifecycleStage, SurveyKind, TicketKind, TicketStatus
from storage.models import (
    DEFAULT_TIERS,
    Base,
    CareTouch,
    Coupon,
    Member,
    Offer,
    OutboxMessage,
    SurveyInvitation,
    Ticket,
    Tier,
)
from tests.rules_helpers import add_marketing_message, add_member, add_purchase

Factory = async_sessionmaker[AsyncSession]
CONFIG = CareConfig(holdout_pct=0)


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Factory]:
    db_engine = create_engine(sqlite_url)
    yield create_session_factory(db_engine)
    await db_engine.dispose()


async def run(
    db: Factory, clock: FrozenClock, only: str | None = None, config: CareConfig = CONFIG
) -> dict[str, RuleOutcome]:
    outcomes = await engine.evaluate(db, config, clock, only=only)
    assert all(o.error is None for o in outcomes), [o.error for o in outcomes]
    return {o.rule: o for o in outcomes}


async def messages(db: Factory, rule: str | None = None) -> list[OutboxMessage]:
    async with db() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        if rule:
            query = query.where(OutboxMessage.rule == rule)
        return list(await session.scalars(query))


async def count(db: Factory, model: type) -> int:
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def new_member(db: Factory, at: datetime, **values: object) -> Member:
    async with db() as session:
        member = await add_member(session, at, **values)
        await session.commit()
        return member


# ---------------------------------------------------------------- welcome and follow-up


async def test_welcome_goes_once_with_a_coupon_in_the_members_language(
    db: Factory, clock: FrozenClock
) -> None:
    en = await new_member(db, clock.now(), locale="en", name="Ann")
    zh = await new_member(db, clock.now(), locale="zh", name="李雷")

    outcome = (await run(db, clock, "welcome"))["welcome"]
    assert outcome.sent == 2
    sent = {m.member_id: m for m in await messages(db, "welcome")}
    async with db() as session:
        coupons = {c.member_id: c for c in await session.scalars(select(Coupon))}
    assert coupons[en.id].source == "rule:welcome"
    code = coupons[en.id].code
    assert "Welcome" in sent[en.id].text and f"{code[:4]}-{code[4:]}" in sent[en.id].text
    assert "欢迎" in sent[zh.id].text and "李雷" in sent[zh.id].text
    assert sent[en.id].kind == "marketing" and sent[en.id].chat_id == en.chat_id

    # A second pass, and one a day later, find nothing new.
    assert (await run(db, clock, "welcome"))["welcome"].decided == 0
    clock.advance(days=1)
    assert (await run(db, clock, "welcome"))["welcome"].decided == 0
    assert len(await messages(db)) == 2
    assert await count(db, Coupon) == 2


async def test_two_passes_at_once_decide_each_member_once(db: Factory, clock: FrozenClock) -> None:
    for n in range(30):
        await new_member(db, clock.now(), locale="en" if n % 2 else "zh")
    first, second = await asyncio.gather(
        engine.evaluate(db, CONFIG, clock, only="welcome"),
        engine.evaluate(db, CONFIG, clock, only="welcome"),
    )
    assert first[0].error is None and second[0].error is None
    assert first[0].sent + second[0].sent == 30
    assert len(await messages(db, "welcome")) == 30
    assert await count(db, CareTouch) == 30
    assert await count(db, Coupon) == 30


async def test_members_who_joined_long_ago_get_no_late_welcome(
    db: Factory, clock: FrozenClock
) -> None:
    await new_member(db, clock.now() - timedelta(days=4))
    assert (await run(db, clock, "welcome"))["welcome"].decided == 0


async def test_follow_up_three_days_after_joining_knows_whether_they_came(
    db: Factory, clock: FrozenClock
) -> None:
    stayed_away = await new_member(db, clock.now(), name="Away")
    came = await new_member(db, clock.now(), name="Came")
    await run(db, clock)
    async with db() as session:
        await add_purchase(session, await session.get_one(Member, came.id), clock.now())
        await session.commit()

    clock.advance(days=2, hours=23)
    assert (await run(db, clock, "welcome_followup"))["welcome_followup"].decided == 0
    clock.advance(hours=1)
    assert (await run(db, clock, "welcome_followup"))["welcome_followup"].sent == 2
    texts = {m.member_id: m.text for m in await messages(db, "welcome_followup")}
    assert "welcome coupon is still waiting" in texts[stayed_away.id]
    assert "thank you for shopping" in texts[came.id]


# ---------------------------------------------------------------- guardrails


async def test_quiet_hours_defer_the_message_to_the_morning(
    db: Factory, clock: FrozenClock
) -> None:
    clock.set(datetime(2026, 3, 2, 14, 30, tzinfo=UTC))  # 22:30 in Shanghai
    await new_member(db, clock.now())
    await run(db, clock, "welcome")
    (message,) = await messages(db, "welcome")
    assert message.not_before == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


async def test_frequency_cap_holds_across_rules_and_passes(
    db: Factory, clock: FrozenClock
) -> None:
    now = clock.now()
    async with db() as session:
        capped = await add_member(session, now)
        for days_ago in (1, 5):
            await add_marketing_message(session, capped, now - timedelta(days=days_ago))
        # One earlier message: room for one more, though welcome and birthday are both due.
        busy = await add_member(session, now, birthday=date(1990, 3, 2))
        await add_marketing_message(session, busy, now - timedelta(days=2))
        await session.commit()

    outcomes = await run(db, clock)
    assert outcomes["welcome"].blocked["frequency_cap"] == 1
    assert [m.member_id for m in await messages(db, "welcome")] == [busy.id]
    assert outcomes["birthday"].blocked["frequency_cap"] == 1
    assert not await messages(db, "birthday")
    # Blocked members were not decided: nothing is recorded for them.
    async with db() as session:
        touched = set(await session.scalars(select(CareTouch.member_id)))
    assert touched == {busy.id}


async def test_unsubscribed_members_get_no_marketing_but_their_service_messages(
    db: Factory, clock: FrozenClock
) -> None:
    start = clock.now()
    async with db() as session:
        quiet = await add_member(session, start, marketing_opt_in=False)
        no_surveys = await add_member(session, start, surveys_opt_in=False)
        await add_purchase(session, quiet, start)
        await add_purchase(session, no_surveys, start)
        await session.commit()
    clock.advance(hours=3)
    await run(db, clock)
    sent = [(m.member_id, m.rule) for m in await messages(db)]
    assert (quiet.id, "welcome") not in sent
    assert (quiet.id, "purchase_survey") in sent
    assert (no_surveys.id, "welcome") in sent
    assert (no_surveys.id, "purchase_survey") not in sent


async def test_blocked_or_deleted_members_get_nothing(db: Factory, clock: FrozenClock) -> None:
    now = clock.now()
    await new_member(db, now, blocked_at=now)
    await new_member(db, now, deleted_at=now, status="deleted")
    assert sum(o.decided for o in (await run(db, clock)).values()) == 0


async def test_an_open_complaint_holds_marketing_back(db: Factory, clock: FrozenClock) -> None:
    now = clock.now()
    async with db() as session:
        member = await add_member(session, now)
        session.add(
            Ticket(
                member_id=member.id,
                kind=TicketKind.COMPLAINT,
                status=TicketStatus.OPEN,
                created_at=now,
                updated_at=now,
            )
        )
        await session.commit()
    outcome = (await run(db, clock, "welcome"))["welcome"]
    assert outcome.blocked["service_recovery"] == 1
    assert not await messages(db)


async def test_holdout_members_get_a_touch_and_nothing_else(
    db: Factory, clock: FrozenClock
) -> None:
    everyone_held = CareConfig(holdout_pct=100)
    await new_member(db, clock.now())
    outcome = (await run(db, clock, "welcome", everyone_held))["welcome"]
    assert (outcome.sent, outcome.held_out) == (0, 1)
    async with db() as session:
        touch = await session.scalar(select(CareTouch))
    assert touch is not None and touch.arm == "holdout" and touch.outbox_id is None
    assert not await messages(db)
    assert await count(db, Coupon) == 0
    assert (await run(db, clock, "welcome", everyone_held))["welcome"].decided == 0


async def test_holdout_split_is_about_the_configured_share(
    db: Factory, clock: FrozenClock
) -> None:
    for _ in range(200):
        await new_member(db, clock.now())
    outcome = (await run(db, clock, "welcome", CareConfig(holdout_pct=10)))["welcome"]
    assert outcome.decided == 200
    assert 8 <= outcome.held_out <= 35
    async with db() as session:
        linked = await session.scalar(
            select(func.count()).where(
                CareTouch.arm == "treatment", CareTouch.outbox_id.is_not(None)
            )
        )
    assert linked == outcome.sent == len(await messages(db))


async def test_a_switched_off_rule_does_nothing(db: Factory, clock: FrozenClock) -> None:
    await new_member(db, clock.now())
    outcomes = await run(
        db, clock, config=CareConfig(holdout_pct=0, rules_disabled=frozenset({"welcome"}))
    )
    assert "welcome" not in outcomes
    assert not await messages(db)


async def test_a_switched_off_offer_stops_its_rule_without_losing_the_occasion(
    db: Factory, clock: FrozenClock
) -> None:
    await new_member(db, clock.now())
    async with db() as session:
        offer = await rule_offer(session, clock, CONFIG, "welcome")
        offer.is_active = False
        await session.commit()
    (outcome,) = await engine.evaluate(db, CONFIG, clock, only="welcome")
    assert outcome.error and "welcome" in outcome.error
    assert not await messages(db)
    async with db() as session:
        await session.execute(update(Offer).values(is_active=True))
        await session.commit()
    assert (await run(db, clock, "welcome"))["welcome"].sent == 1


# ---------------------------------------------------------------- each rule's timing


async def test_purchase_survey_three_hours_later_once_in_two_weeks(
    db: Factory, clock: FrozenClock
) -> None:
    async with db() as session:
        member = await add_member(session, clock.now() - timedelta(days=30))
        await add_purchase(session, member, clock.now())
        await session.commit()
    clock.advance(hours=2, minutes=59)
    assert (await run(db, clock, "purchase_survey"))["purchase_survey"].decided == 0
    clock.advance(minutes=1)
    assert (await run(db, clock, "purchase_survey"))["purchase_survey"].sent == 1
    (message,) = await messages(db, "purchase_survey")
    assert message.kind == "service" and "How satisfied" in message.text
    buttons = [b for row in message.reply_markup["inline_keyboard"] for b in row]
    assert len(buttons) == 5
    async with db() as session:
        invitation = await session.scalar(select(SurveyInvitation))
    assert invitation is not None and invitation.kind == SurveyKind.CSAT
    assert invitation.purchase_id is not None
    assert str(invitation.id) in buttons[0]["callback_data"]

    # Another purchase the next day: no second survey within 14 days.
    async with db() as session:
        await add_purchase(session, await session.get_one(Member, member.id), clock.now())
        await session.commit()
    clock.advance(hours=4)
    assert (await run(db, clock, "purchase_survey"))["purchase_survey"].decided == 0


async def test_birthday_greeting_at_ten_in_the_members_own_time(
    db: Factory, clock: FrozenClock
) -> None:
    birthday = date(1990, 3, 3)
    shanghai = await new_member(
        db, clock.now() - timedelta(days=100), birthday=birthday, timezone="Asia/Shanghai"
    )
    new_york = await new_member(
        db, clock.now() - timedelta(days=100), birthday=birthday, timezone="America/New_York"
    )
    clock.set(datetime(2026, 3, 3, 1, 59, tzinfo=UTC))  # 09:59 in Shanghai
    assert (await run(db, clock, "birthday"))["birthday"].decided == 0
    clock.set(datetime(2026, 3, 3, 2, 0, tzinfo=UTC))  # 10:00 in Shanghai
    assert (await run(db, clock, "birthday"))["birthday"].sent == 1
    assert (await run(db, clock, "birthday"))["birthday"].decided == 0
    clock.set(datetime(2026, 3, 3, 14, 59, tzinfo=UTC))  # 09:59 in New York
    assert (await run(db, clock, "birthday"))["birthday"].decided == 0
    clock.set(datetime(2026, 3, 3, 15, 0, tzinfo=UTC))  # 10:00 in New York
    assert (await run(db, clock, "birthday"))["birthday"].sent == 1
    clock.advance(days=1)
    assert (await run(db, clock, "birthday"))["birthday"].decided == 0
    sent = [m.member_id for m in await messages(db, "birthday")]
    assert sent == [shanghai.id, new_york.id]
    assert "Happy birthday" in (await messages(db, "birthday"))[0].text
    # Next year, again.
    clock.set(datetime(2027, 3, 3, 2, 30, tzinfo=UTC))
    assert (await run(db, clock, "birthday"))["birthday"].sent == 1


async def test_a_leap_day_birthday_is_celebrated_on_28_february(
    db: Factory, clock: FrozenClock
) -> None:
    await new_member(db, clock.now() - timedelta(days=100), birthday=date(2000, 2, 29))
    clock.set(datetime(2027, 2, 28, 2, 30, tzinfo=UTC))
    assert (await run(db, clock, "birthday"))["birthday"].sent == 1


async def test_winback_when_at_risk_and_last_chance_when_lapsed(
    db: Factory, clock: FrozenClock
) -> None:
    now = clock.now()
    member = await new_member(
        db, now - timedelta(days=200), lifecycle_stage=LifecycleStage.AT_RISK,
        stage_changed_at=now - timedelta(hours=1),
    )  # fmt: skip
    assert (await run(db, clock, "winback"))["winback"].sent == 1
    assert (await run(db, clock, "winback"))["winback"].decided == 0
    assert "miss you" in (await messages(db, "winback"))[0].text

    clock.advance(days=30)
    async with db() as session:
        await session.execute(
            update(Member)
            .where(Member.id == member.id)
            .values(lifecycle_stage=LifecycleStage.LAPSED, stage_changed_at=clock.now())
        )
        await session.commit()
    outcomes = await run(db, clock)
    assert outcomes["last_chance"].sent == 1 and outcomes["winback"].decided == 0


async def test_coupon_expiry_reminder_three_days_before_once(
    db: Factory, clock: FrozenClock
) -> None:
    async with db() as session:
        member = await add_member(session, clock.now() - timedelta(days=10))
        spent = await add_member(session, clock.now() - timedelta(days=10))
        offer = await rule_offer(session, clock, CONFIG, "winback")  # 21 days
        coupon = await issue_coupon(
            session, clock, member_id=member.id, offer=offer, source="test"
        )
        used = await issue_coupon(session, clock, member_id=spent.id, offer=offer, source="test")
        used.redeemed_at = clock.now()
        await session.commit()
    clock.advance(days=17, hours=23)
    assert (await run(db, clock, "coupon_expiry"))["coupon_expiry"].decided == 0
    clock.advance(hours=2)
    assert (await run(db, clock, "coupon_expiry"))["coupon_expiry"].sent == 1
    assert (await run(db, clock, "coupon_expiry"))["coupon_expiry"].decided == 0
    (message,) = await messages(db, "coupon_expiry")
    assert message.member_id == member.id and coupon.code[:4] in message.text
    async with db() as session:
        reminded = await session.get_one(Coupon, coupon.id)
    assert reminded.expiry_reminded_at is not None


async def test_membership_anniversary_each_year(db: Factory, clock: FrozenClock) -> None:
    await new_member(db, datetime(2025, 3, 2, 2, 0, tzinfo=UTC))
    await new_member(db, datetime(2025, 3, 5, 2, 0, tzinfo=UTC))
    outcome = (await run(db, clock, "anniversary"))["anniversary"]
    assert outcome.sent == 1
    assert "1-year anniversary" in (await messages(db, "anniversary"))[0].text
    clock.advance(days=1)
    assert (await run(db, clock, "anniversary"))["anniversary"].decided == 0


async def test_nps_every_ninety_days_for_active_members_only(
    db: Factory, clock: FrozenClock
) -> None:
    joined = clock.now() - timedelta(days=90, hours=1)
    active = await new_member(db, joined, lifecycle_stage=LifecycleStage.ACTIVE)
    await new_member(db, joined, lifecycle_stage=LifecycleStage.AT_RISK)
    await new_member(db, clock.now() - timedelta(days=30), lifecycle_stage=LifecycleStage.ACTIVE)
    assert (await run(db, clock, "nps_survey"))["nps_survey"].sent == 1
    (message,) = await messages(db, "nps_survey")
    assert message.member_id == active.id and message.kind == "service"
    keyboard: list[list[dict[str, str]]] = message.reply_markup["inline_keyboard"]
    assert sum(len(row) for row in keyboard) == 11
    clock.advance(days=45)
    assert (await run(db, clock, "nps_survey"))["nps_survey"].decided == 0
    clock.advance(days=45)
    assert (await run(db, clock, "nps_survey"))["nps_survey"].sent == 1


async def test_tier_upgrade_is_congratulated_and_a_downgrade_is_not(
    db: Factory, clock: FrozenClock
) -> None:
    async with db() as session:
        climber = await add_member(session, clock.now() - timedelta(days=50))
        faller = await add_member(
            session, clock.now() - timedelta(days=50), tier_code="silver",
            tier_changed_at=clock.now(),
        )  # fmt: skip
        await session.commit()
    async with db() as session:
        result = await record_purchase(
            session, CONFIG, clock, member_id=climber.id, amount_minor=120_000
        )
        await session.commit()
    assert result.tier_code == "silver"
    outcome = (await run(db, clock, "tier_upgrade"))["tier_upgrade"]
    assert outcome.sent == 1
    (message,) = await messages(db, "tier_upgrade")
    assert message.member_id == climber.id and "Silver" in message.text and "1.25" in message.text
    assert faller.id != message.member_id
    assert (await run(db, clock, "tier_upgrade"))["tier_upgrade"].decided == 0


async def test_close_to_the_next_tier_nudge_the_day_after_a_purchase(
    db: Factory, clock: FrozenClock
) -> None:
    async with db() as session:
        close = await add_member(
            session, clock.now() - timedelta(days=50), spend_12m_minor=90_000,
            last_purchase_at=clock.now(),
        )  # fmt: skip
        await add_member(
            session, clock.now() - timedelta(days=50), spend_12m_minor=20_000,
            last_purchase_at=clock.now(),
        )  # fmt: skip
        await session.commit()
    assert (await run(db, clock, "tier_nudge"))["tier_nudge"].decided == 0
    clock.advance(days=1)
    assert (await run(db, clock, "tier_nudge"))["tier_nudge"].sent == 1
    (message,) = await messages(db, "tier_nudge")
    assert message.member_id == close.id and "¥100.00" in message.text and "Silver" in message.text


async def test_referrer_is_rewarded_once_when_the_friend_first_buys(
    db: Factory, clock: FrozenClock
) -> None:
    async with db() as session:
        referrer = await add_member(session, clock.now() - timedelta(days=50))
        friend = await add_member(session, clock.now(), referrer_id=referrer.id)
        await session.commit()
    async with db() as session:
        await record_purchase(session, CONFIG, clock, member_id=friend.id, amount_minor=5_000)
        await session.commit()
    outcome = (await run(db, clock, "referral_reward"))["referral_reward"]
    assert outcome.sent == 1
    (message,) = await messages(db, "referral_reward")
    assert message.member_id == referrer.id and "200" in message.text
    async with db() as session:
        assert (await session.get_one(Member, referrer.id)).points_balance == 200
        assert (await session.get_one(Member, friend.id)).referral_rewarded_at is not None
    assert (await run(db, clock, "referral_reward"))["referral_reward"].decided == 0


async def test_complaint_follow_up_three_days_after_closing(
    db: Factory, clock: FrozenClock
) -> None:
    now = clock.now()
    async with db() as session:
        member = await add_member(session, now - timedelta(days=30))
        session.add(
            Ticket(
                member_id=member.id,
                kind=TicketKind.COMPLAINT,
                status=TicketStatus.CLOSED,
                created_at=now,
                updated_at=now,
                closed_at=now,
            )
        )
        await session.commit()
    clock.advance(days=2, hours=23)
    assert (await run(db, clock, "complaint_followup"))["complaint_followup"].decided == 0
    clock.advance(hours=1)
    assert (await run(db, clock, "complaint_followup"))["complaint_followup"].sent == 1
    (message,) = await messages(db, "complaint_followup")
    assert message.kind == "service" and "Feedback" in message.text


# ---------------------------------------------------------------- dry run


async def test_dry_run_shows_who_gets_what_and_keeps_nothing(
    db: Factory, clock: FrozenClock
) -> None:
    await new_member(db, clock.now(), name="Ann", birthday=date(1991, 3, 2))
    outcomes = {o.rule: o for o in await engine.plan(db, CONFIG, clock)}
    assert outcomes["welcome"].sent == 1 and outcomes["birthday"].sent == 1
    (decision,) = outcomes["welcome"].decisions
    assert decision.name == "Ann" and decision.text and "Welcome" in decision.text
    for model in (OutboxMessage, CareTouch, Coupon, Offer):
        assert await count(db, model) == 0, model
    # The real pass afterwards still finds them due.
    assert (await run(db, clock, "welcome"))["welcome"].sent == 1


# ---------------------------------------------------------------- both backends


async def test_every_rule_runs_the_same_on_sqlite_and_postgres(
    any_db_url: str, clock: FrozenClock
) -> None:
    db_engine = create_engine(any_db_url)
    async with db_engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
        await connection.execute(insert(Tier), [dict(tier) for tier in DEFAULT_TIERS])
    db = create_session_factory(db_engine)
    now = clock.now()
    try:
        async with db() as session:
            fresh = await add_member(session, now, birthday=date(1990, 3, 2))
            buyer = await add_member(session, now - timedelta(days=90, hours=1))
            await add_purchase(session, buyer, now - timedelta(hours=3))
            buyer.lifecycle_stage = LifecycleStage.ACTIVE
            await add_member(
                session, now - timedelta(days=60), lifecycle_stage=LifecycleStage.AT_RISK,
                stage_changed_at=now,
            )  # fmt: skip
            session.add(
                Ticket(
                    member_id=buyer.id,
                    kind=TicketKind.COMPLAINT,
                    status=TicketStatus.CLOSED,
                    created_at=now,
                    updated_at=now,
                    closed_at=now - timedelta(days=3),
                )
            )
            await session.commit()
        first, second = await asyncio.gather(
            engine.evaluate(db, CONFIG, clock), engine.evaluate(db, CONFIG, clock)
        )
        assert all(o.error is None for o in first + second)
        sent = sorted((m.rule or "", m.member_id == fresh.id) for m in await messages(db))
        assert sent == [
            ("birthday", True),
            ("complaint_followup", False),
            ("nps_survey", False),
            ("purchase_survey", False),
            ("welcome", True),
            ("winback", False),
        ]
        assert await count(db, CareTouch) == 6
        assert (await engine.evaluate(db, CONFIG, clock))[0].decided == 0
    finally:
        await db_engine.dispose()


async def test_a_friends_first_purchase_entered_late_still_rewards_the_referrer(
    db: Factory, clock: FrozenClock
) -> None:
    async with db() as session:
        referrer = await add_member(session, clock.now() - timedelta(days=50))
        friend = await add_member(
            session, clock.now() - timedelta(days=20), referrer_id=referrer.id
        )
        await session.commit()
    await run(db, clock)  # a pass has covered up to now
    clock.advance(minutes=5)
    async with db() as session:
        await record_purchase(
            session, CONFIG, clock, member_id=friend.id, amount_minor=5_000,
            purchased_at=clock.now() - timedelta(days=2),
        )  # fmt: skip
        await session.commit()
    assert (await run(db, clock, "referral_reward"))["referral_reward"].sent == 1


async def test_a_stage_stamped_before_a_pass_but_committed_after_it_is_not_lost(
    db: Factory, clock: FrozenClock
) -> None:
    """The segment refresh stamps stage changes with its start time and commits later: a pass
    that ran in between has already covered that moment, and the next pass must still see them."""
    await run(db, clock)  # a pass covers up to now
    stamped = clock.now() - timedelta(seconds=40)  # the refresh began before that pass ...
    clock.advance(minutes=1)
    async with db() as session:  # ... and commits only now
        for stage in (LifecycleStage.AT_RISK, LifecycleStage.LAPSED):
            await add_member(
                session, clock.now() - timedelta(days=300), lifecycle_stage=stage,
                stage_changed_at=stamped,
            )  # fmt: skip
        await session.commit()
    outcomes = await run(db, clock)
    assert outcomes["winback"].sent == 1 and outcomes["last_chance"].sent == 1
    clock.advance(minutes=1)
    again = await run(db, clock)
    assert again["winback"].decided == 0 and again["last_chance"].decided == 0
