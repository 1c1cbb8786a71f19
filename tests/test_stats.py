"""/stats: the numbers on a seeded shop are right, the chart is a PNG, and only admins see it."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from care.console.charts import stats_chart_png
from care.console.stats import nps_score, shop_stats, week_starts
from care.core.clock import FrozenClock
from care.staff.roles import add_staff
from storage.enums import CampaignStatus, MemberStatus, StaffRole
from storage.models import (
    AuditEntry,
    Campaign,
    CareTouch,
    Member,
    MemberValue,
    OutboxMessage,
    SurveyInvitation,
    SurveyResponse,
    Ticket,
)
from tests.conftest import RunningBot
from tests.console_helpers import seed_member

OWNER_ID = 900001
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_nonces = itertools.count(1)


async def answer(
    session: AsyncSession,
    member: Member,
    kind: str,
    score: int,
    at: datetime,
    expectation: str | None = None,
) -> None:
    invitation = SurveyInvitation(
        member_id=member.id, kind=kind, nonce=f"n{next(_nonces)}", created_at=at,
        expires_at=at + timedelta(days=7), answered_at=at,
    )  # fmt: skip
    session.add(invitation)
    await session.flush()
    session.add(
        SurveyResponse(
            invitation_id=invitation.id, member_id=member.id, kind=kind, score=score,
            expectation=expectation, created_at=at,
        )
    )  # fmt: skip


async def seed_numbers(session: AsyncSession, now: datetime) -> None:
    day = timedelta(days=1)
    active = await seed_member(session, now - 2 * day, lifecycle_stage="active", value_tier="high")
    await seed_member(session, now - 5 * day, lifecycle_stage="new", value_tier="medium")
    await seed_member(session, now - 20 * day, lifecycle_stage="new")
    await seed_member(session, now - 90 * day, lifecycle_stage="at_risk", value_tier="low")
    await seed_member(session, now - 400 * day, lifecycle_stage="active")
    await seed_member(
        session, now - day, status=MemberStatus.DELETED, deleted_at=now, lifecycle_stage="new"
    )

    hour = timedelta(hours=1)
    # This (shop-local) week: promoters 10 and 9, a passive 7, a detractor 3.
    for score in (10, 9, 7, 3):
        await answer(session, active, "nps", score, now - hour)
    await answer(session, active, "csat", 5, now - hour, "better")
    await answer(session, active, "csat", 4, now - hour, "as_expected")
    await answer(session, active, "csat", 2, now - hour, "worse")
    # Three weeks ago: one more detractor; 13 weeks ago falls outside the 12 weeks.
    await answer(session, active, "nps", 0, now - 21 * day)
    await answer(session, active, "csat", 1, now - 13 * 7 * day, "worse")

    for age in (timedelta(hours=5), 2 * day, 10 * day):
        session.add(
            Ticket(
                member_id=active.id, kind="complaint", status="open",
                created_at=now - age, updated_at=now - age,
            )
        )  # fmt: skip
    session.add(
        Ticket(
            member_id=active.id, kind="question", status="closed",
            created_at=now - 30 * day, updated_at=now, closed_at=now,
        )
    )  # fmt: skip

    for arm, converted in (("treatment", now - hour), ("holdout", None)):
        session.add(
            CareTouch(
                rule="winback", member_id=active.id, occasion=f"test:{arm}", arm=arm,
                decided_at=now - 3 * day, converted_at=converted,
            )
        )  # fmt: skip

    campaign = Campaign(
        name="Spring", audience={"kind": "all", "value": None}, template="Hi",
        status=CampaignStatus.DONE, recipients=4, queued=4, created_at=now - day,
        started_at=now - day, launched_at=now - day, finished_at=now,
    )  # fmt: skip
    session.add(campaign)
    await session.flush()
    for i, status in enumerate(("sent", "sent", "failed", "skipped")):
        session.add(
            OutboxMessage(
                idempotency_key=f"campaign:{campaign.id}:member:{i}", chat_id=1, kind="marketing",
                campaign_id=campaign.id, text="Hi", status=status, not_before=now, created_at=now,
            )
        )  # fmt: skip
    await session.commit()


async def test_numbers_on_a_seeded_shop(app: RunningBot) -> None:
    now = app.clock.now()
    async with app.session() as session:
        await seed_numbers(session, now)
    async with app.session() as session:
        stats = await shop_stats(session, app.config, app.clock)

    members = stats.members
    assert (members.total, members.new_7d, members.new_30d) == (5, 2, 3)
    assert members.by_stage["active"] == 2 and members.by_stage["new"] == 2
    assert members.by_stage["at_risk"] == 1 and members.by_stage["lapsed"] == 0
    assert members.by_value_tier == {"high": 1, "medium": 1, "low": 1, "unscored": 2}

    assert len(stats.weeks) == 12
    this_week = stats.weeks[-1]
    assert (this_week.promoters, this_week.passives, this_week.detractors) == (2, 1, 1)
    assert this_week.nps == 25.0
    assert round(this_week.csat or 0, 2) == 3.67
    assert (this_week.worse, this_week.as_expected, this_week.better) == (1, 1, 1)
    assert stats.weeks[-4].detractors == 1 and stats.weeks[-4].nps == -100.0
    assert stats.period.nps == 0.0 and stats.period.csat_count == 3

    assert stats.tickets.open == 3
    assert stats.tickets.oldest_age == timedelta(days=10)
    assert stats.tickets.median_age == timedelta(days=2)

    [winback] = stats.rules
    assert (winback.rule, winback.sent, winback.held_out, winback.uplift) == ("winback", 1, 1, 100)

    [campaign] = stats.campaigns
    assert (campaign.sent, campaign.failed, campaign.blocked, campaign.pending) == (2, 1, 1, 0)


def test_nps_and_the_shop_local_weeks() -> None:
    assert nps_score(0, 0, 0) is None
    assert nps_score(5, 3, 2) == 30.0
    clock = FrozenClock(datetime.fromisoformat("2026-03-02T03:00:00+00:00"))
    starts = week_starts(clock.now(), "Asia/Shanghai", 12)
    # Monday 00:00 in Shanghai is Sunday 16:00 UTC.
    assert starts[-1].isoformat() == "2026-03-01T16:00:00+00:00"
    assert starts[0] == starts[-1] - timedelta(weeks=11)


async def test_owner_gets_text_and_chart_in_both_languages(app: RunningBot) -> None:
    async with app.session() as session:
        await seed_numbers(session, app.clock.now())
    owner = app.user(OWNER_ID, first_name="Boss", language_code="en")
    await owner.send("/stats")
    text = await owner.expect("Shop numbers")
    assert "Members: 5" in text.text and "new in 7 days: 2" in text.text
    assert "NPS +0" in text.text and "promoters 40%" in text.text
    assert "CSAT 3.67" in text.text and "worse 33%" in text.text
    assert "Open tickets: 3" in text.text and "oldest waiting 10 d" in text.text
    assert "sent 2 · failed 1" in text.text
    assert "Win-back: 1 · 100% · +100.0 pp" in text.text
    assert "Likely spend" not in text.text  # no value model fitted yet: no outlook line
    chart = await owner.wait_until(lambda m: m.photo is not None)
    assert chart.photo is not None and chart.photo.startswith(PNG_MAGIC)
    async with app.session() as session:
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert actions.count("stats.view") == 1

    admin = app.user(4242, first_name="王", language_code="zh")
    async with app.session() as session:
        await add_staff(
            session, app.config, app.clock, actor_telegram_id=OWNER_ID, telegram_id=4242,
            role=StaffRole.ADMIN,
        )  # fmt: skip
        await session.commit()
    await admin.send("/stats")
    zh_text = await admin.expect("店铺数据")
    assert "会员：5" in zh_text.text and "未结工单：3" in zh_text.text
    zh_chart = await admin.wait_until(lambda m: m.photo is not None)
    assert zh_chart.photo is not None and zh_chart.photo.startswith(PNG_MAGIC)


async def test_chart_of_an_empty_shop_draws_without_warnings(
    app: RunningBot,
) -> None:
    async with app.session() as session:
        stats = await shop_stats(session, app.config, app.clock)
    for locale in ("zh", "en"):
        assert stats_chart_png(stats, locale).startswith(PNG_MAGIC)


async def test_a_cashier_is_refused_and_a_shopper_learns_nothing(app: RunningBot) -> None:
    async with app.session() as session:
        await add_staff(
            session, app.config, app.clock, actor_telegram_id=OWNER_ID, telegram_id=4243,
            role=StaffRole.CASHIER,
        )  # fmt: skip
        await session.commit()
    cashier = app.user(4243, first_name="Wang", language_code="en")
    await cashier.send("/stats")
    await cashier.expect("for admins and owners")

    shopper = app.user(1001, first_name="Li", language_code="en")
    await shopper.send("/stats")
    answer_to_stats = await shopper.next_message()
    await shopper.send("/definitely_not_a_command")
    assert (await shopper.next_message()).text == answer_to_stats.text
    assert all(m.photo is None for m in [*shopper.messages, *cashier.messages])
    async with app.session() as session:
        assert list(await session.scalars(select(AuditEntry.action))).count("stats.view") == 0


async def test_the_value_model_outlook_by_value_tier_in_both_languages(app: RunningBot) -> None:
    now = app.clock.now()
    async with app.session() as session:
        predictions = [("high", 120_000, 1.5), ("high", 80_000, 0.75), ("low", 5_050, 0.25)]
        for tier, value, month in predictions:
            member = await seed_member(session, now, lifecycle_stage="active", value_tier=tier)
            session.add(
                MemberValue(
                    member_id=member.id, p_alive=0.8, purchases_30d=month, purchases_90d=3 * month,
                    spend_per_purchase_minor=10_000, value_12m_minor=value, refreshed_at=now,
                )
            )  # fmt: skip
        gone = await seed_member(session, now, status=MemberStatus.DELETED, deleted_at=now)
        session.add(
            MemberValue(
                member_id=gone.id, p_alive=0.9, purchases_30d=9.0, purchases_90d=9.0,
                spend_per_purchase_minor=1, value_12m_minor=9_999_999, refreshed_at=now,
            )
        )  # fmt: skip
        await session.commit()
    async with app.session() as session:
        stats = await shop_stats(session, app.config, app.clock)
    assert stats.members.predicted_value_by_tier == {"high": 200_000, "low": 5_050}
    assert stats.members.expected_purchases_30d == 2.5

    owner = app.user(OWNER_ID, first_name="Boss", language_code="en")
    await owner.send("/stats")
    text = (await owner.expect("Shop numbers")).text.splitlines()
    assert "🔮 Likely spend in the next 12 months: high ¥2,000.00, low ¥50.50" in text
    assert "🛒 Purchases expected from members in the next 30 days: 2" in text

    admin = app.user(4242, first_name="王", language_code="zh")
    async with app.session() as session:
        await add_staff(
            session, app.config, app.clock, actor_telegram_id=OWNER_ID, telegram_id=4242,
            role=StaffRole.ADMIN,
        )  # fmt: skip
        await session.commit()
    await admin.send("/stats")
    zh_text = (await admin.expect("店铺数据")).text.splitlines()
    assert any(
        line.startswith("🔮 预计未来 12 个月消费：") and "¥2,000.00" in line for line in zh_text
    )
    assert "🛒 预计未来 30 天会员购买次数：2" in zh_text
