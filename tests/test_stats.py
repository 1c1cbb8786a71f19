"""/stats: the numbers on a seeded shop are right, the chart is a PNG, and only admins see it."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from care.console.charts import stats_chart_png
from care.console.stats import nps_score, shop_stats, week_starts
from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.staff.roles import add_staff
from storage.enums import CampaignStatus, MemberStatus, StaffRole
from storage.models import (
    AuditEntry,
    Campaign,
    CareTouch,
    Member,
    MemberValue,
    OutboxMessage,
    Staff,
    SurveyInvitation,
    SurveyResponse,
    Ticket,
    TicketMessage,
)
from tests.conftest import RunningBot
from tests.console_helpers import schema_session_factory, seed_member
from tests.staff_helpers import make_staff
from tests.test_feedback import deliver, member_user, tickets_of

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
    assert "Open conversations: 3" in text.text and "oldest open 10 days" in text.text
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
    assert "会员：5" in zh_text.text and "未结会话：3" in zh_text.text
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


QIAN_ID, WANG_ID = 800010, 800011


async def seed_conversations(session: AsyncSession, config: CareConfig, now: datetime) -> None:
    """Conversations with known answer and closing times, and ratings by two staff members.

    First answers after 45 min, 2 h 15 min, 4 h and 10 min (median 1 h 30 min); closings after
    2 h, 2 days and 1 day (median 1 day); Qian rated 5 and 4, Wang 3; one old conversation
    outside the 12 weeks, and one still waiting for the shop.
    """
    clock = FrozenClock(now)
    await make_staff(session, config, clock, QIAN_ID, StaffRole.CASHIER, "Qian")
    await make_staff(session, config, clock, WANG_ID, StaffRole.CASHIER, "Wang Fang")
    qian = await session.scalar(select(Staff).where(Staff.telegram_id == QIAN_ID))
    assert qian is not None
    qian.username = "qian"
    member = await seed_member(session, now - timedelta(days=200))
    hour, day, minute = timedelta(hours=1), timedelta(days=1), timedelta(minutes=1)

    def conversation(
        opened: datetime,
        answered_after: timedelta | None,
        staff: int | None,
        closed_after: timedelta | None = None,
        rating: int | None = None,
    ) -> Ticket:
        messages = [TicketMessage(author="member", text="Hello?", created_at=opened)]
        if answered_after is not None:
            messages += [
                TicketMessage(author="member", text="Anyone?", created_at=opened + minute),
                TicketMessage(
                    author="staff", text="Yes!", staff_telegram_id=staff,
                    created_at=opened + answered_after,
                ),
                TicketMessage(
                    author="staff", text="Later", staff_telegram_id=staff,
                    created_at=opened + answered_after + hour,
                ),
            ]  # fmt: skip
        closed = opened + closed_after if closed_after is not None else None
        status = "closed" if closed else ("answered" if answered_after else "open")
        return Ticket(
            member_id=member.id, kind="message", status=status, created_at=opened,
            updated_at=closed or opened, closed_at=closed, closed_by=staff if closed else None,
            assigned_to=staff, handling_rating=rating, messages=messages,
            waiting_since=opened if status == "open" else None,
        )  # fmt: skip

    session.add_all(
        [
            conversation(now - 10 * hour, 45 * minute, QIAN_ID, 2 * hour, rating=5),
            conversation(now - 5 * day, 2 * hour + 15 * minute, WANG_ID, 2 * day, rating=3),
            conversation(now - day, 4 * hour, QIAN_ID),
            conversation(now - 2 * day, 10 * minute, QIAN_ID, day, rating=4),
            conversation(now - 3 * hour, None, None),
            # 100 days ago: outside the 12 weeks, its times and its rating count nowhere.
            conversation(now - 100 * day, 2 * day, WANG_ID, 10 * day, rating=1),
        ]
    )
    await session.commit()


async def test_conversation_figures_from_seeded_conversations_in_both_languages(
    app: RunningBot,
) -> None:
    async with app.session() as session:
        await seed_conversations(session, app.config, app.clock.now())
    async with app.session() as session:
        stats = await shop_stats(session, app.config, app.clock)
    figures = stats.conversations
    assert (figures.open, figures.waiting) == (2, 1)
    assert (figures.first_response, figures.first_response_count) == (timedelta(hours=1.5), 4)
    assert (figures.resolution, figures.resolution_count) == (timedelta(days=1), 3)
    assert [(r.staff_telegram_id, r.average, r.count) for r in figures.ratings] == [
        (QIAN_ID, 4.5, 2),
        (WANG_ID, 3.0, 1),
    ]

    owner = app.user(OWNER_ID, first_name="Boss", language_code="en")
    await owner.send("/stats")
    lines = (await owner.expect("Shop numbers")).text.splitlines()
    assert "Conversations, last 12 weeks" in lines
    assert (
        "📨 Open conversations: 2 · waiting for our answer: 1 · oldest open 1 day"
        " · median age 13 hrs 30 mins" in lines
    )
    assert "⏱ First answer: median 1 hr 30 mins after the shopper wrote (4 conversations)" in lines
    assert "✅ Closed: median 1 day after it opened (3 conversations)" in lines
    assert "• Qian (@qian): 4.5/5 (2 ratings)" in lines
    assert "• Wang Fang: 3/5 (1 rating)" in lines
    chart = await owner.wait_until(lambda m: m.photo is not None)
    assert chart.photo is not None and chart.photo.startswith(PNG_MAGIC)

    admin = app.user(4242, first_name="王", language_code="zh")
    async with app.session() as session:
        await make_staff(session, app.config, app.clock, 4242, StaffRole.ADMIN)
        await session.commit()
    await admin.send("/stats")
    zh_lines = (await admin.expect("店铺数据")).text.splitlines()
    assert "会话（近 12 周）" in zh_lines
    assert "📨 未结会话：2 · 等待我们回复：1 · 最久已开 1天 · 中位时长 13小时30分钟" in zh_lines
    assert "⏱ 首次回复：顾客来信后中位 1小时30分钟（4 个会话）" in zh_lines
    assert "✅ 关闭：开启后中位 1天（3 个会话）" in zh_lines
    assert "• Qian（@qian）：4.5/5（2 个评分）" in zh_lines
    assert "• Wang Fang：3/5（1 个评分）" in zh_lines
    zh_chart = await admin.wait_until(lambda m: m.photo is not None)
    assert zh_chart.photo is not None and zh_chart.photo.startswith(PNG_MAGIC)


async def test_a_conversation_answered_closed_and_rated_through_the_bot_shows_in_stats(
    app: RunningBot,
) -> None:
    async with app.session() as session:
        await make_staff(session, app.config, app.clock, QIAN_ID, StaffRole.CASHIER, "Qian")
        await session.commit()
    shopper = await member_user(app, 5101, "en")
    await shopper.send("Are you open on Sunday?")
    await shopper.expect("reached our team")
    [ticket] = await tickets_of(app)

    app.clock.advance(minutes=45)
    cashier = app.user(QIAN_ID, first_name="Qian", username="qian", language_code="en")
    await cashier.send("/inbox")
    await cashier.expect("📥")
    await cashier.press_data(f"tk:reply:{ticket.id}:0")
    await cashier.wait_until(lambda m: "Write your answer" in m.text)
    await cashier.send("Yes, 10 to 18.")
    await cashier.expect("on its way")
    app.clock.advance(hours=2)
    await cashier.press_data(f"tk:close:{ticket.id}:0")
    await cashier.wait_until(lambda m: "· closed ·" in m.text)
    await app.settle()
    await deliver(app)
    invitation = await shopper.wait_until(lambda m: any("4 🙂" in row for row in m.inline_buttons))
    await shopper.press("4 🙂", invitation)
    await shopper.expect("tell us why")

    owner = app.user(OWNER_ID, first_name="Boss", language_code="en")
    await owner.send("/stats")
    lines = (await owner.expect("Shop numbers")).text.splitlines()
    assert "📨 No open conversations." in lines
    assert "⏱ First answer: median 45 mins after the shopper wrote (1 conversation)" in lines
    assert "✅ Closed: median 2 hrs 45 mins after it opened (1 conversation)" in lines
    assert "• Qian (@qian): 4/5 (1 rating)" in lines


async def test_conversation_medians_read_the_same_on_sqlite_and_postgres(
    any_db_url: str, clock: FrozenClock
) -> None:
    config = CareConfig(owner_ids=frozenset({OWNER_ID}))
    async with schema_session_factory(any_db_url) as factory:
        async with factory() as session:
            await seed_conversations(session, config, clock.now())
        async with factory() as session:
            figures = (await shop_stats(session, config, clock)).conversations
    assert (figures.open, figures.waiting) == (2, 1)
    assert (figures.first_response, figures.first_response_count) == (timedelta(hours=1.5), 4)
    assert (figures.resolution, figures.resolution_count) == (timedelta(days=1), 3)
    assert [(r.staff_telegram_id, r.average, r.count) for r in figures.ratings] == [
        (QIAN_ID, 4.5, 2),
        (WANG_ID, 3.0, 1),
    ]
