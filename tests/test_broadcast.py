"""/broadcast end to end: an owner presses through the flow; the outbox and the members show it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from care.campaigns import launch as campaigns
from care.campaigns.launch import launch_campaign, launch_due_campaigns
from care.campaigns.schedule import create_campaign
from care.campaigns.supervision import CampaignWatchers
from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.messaging.delivery import DeliveryWorker
from care.segments.audience import Audience
from care.staff.roles import add_staff
from handlers.staff.broadcast import CDBroadcast
from storage.enums import CampaignStatus, StaffRole, TicketKind, TicketStatus
from storage.models import AuditEntry, Campaign, Coupon, Member, OutboxMessage, Ticket
from tests.conftest import RunningBot
from tests.console_helpers import schema_session_factory, seed_member, seed_offer
from tests.simulator import SimUser

OWNER_ID = 900001


async def eventually(check: Callable[[], Coroutine[Any, Any, bool]], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def watchers(app: RunningBot) -> CampaignWatchers:
    await eventually(lambda: _has_watchers(app))
    found: CampaignWatchers = app.dp.workflow_data["campaign_watchers"]
    found.interval = 0.05
    return found


async def _has_watchers(app: RunningBot) -> bool:
    return "campaign_watchers" in app.dp.workflow_data


async def seed_shop(app: RunningBot) -> dict[str, Member]:
    """Five members; three of them can receive a broadcast now."""
    now = app.clock.now()
    async with app.session() as session:
        members = {
            "anna": await seed_member(
                session, now, name="Anna", telegram_id=3001, chat_id=3001, tier_code="gold"
            ),
            "bo": await seed_member(session, now, name="Bo", telegram_id=3002, chat_id=3002),
            "chen": await seed_member(
                session, now, name="陈", telegram_id=3003, chat_id=3003, locale="zh"
            ),
            "no_consent": await seed_member(
                session, now, name="Dee", telegram_id=3004, chat_id=3004, marketing_opt_in=False
            ),
            "blocked": await seed_member(
                session, now, name="Eve", telegram_id=3005, chat_id=3005, blocked_at=now
            ),
        }
        await seed_offer(session, now, title="Spring sale", value=10)
        await session.commit()
    return members


def member_users(app: RunningBot) -> dict[str, SimUser]:
    return {
        name: app.user(user_id, first_name=name, started=True)
        for name, user_id in (("anna", 3001), ("bo", 3002), ("chen", 3003), ("dee", 3004))
    }


async def outbox_rows(app: RunningBot) -> list[OutboxMessage]:
    async with app.session() as session:
        query = select(OutboxMessage).where(OutboxMessage.campaign_id.is_not(None))
        return list(await session.scalars(query.order_by(OutboxMessage.id)))


async def only_campaign(app: RunningBot) -> Campaign:
    async with app.session() as session:
        campaigns = list(await session.scalars(select(Campaign)))
    assert len(campaigns) == 1
    return campaigns[0]


async def press_to_text_step(owner: SimUser, audience_button: str) -> None:
    await owner.send("/broadcast")
    await owner.expect("New broadcast")
    await owner.press(audience_button)
    await owner.expect("Send the text for members who read Chinese")


async def one_text_for_all(owner: SimUser, text: str) -> None:
    """The Chinese text step gets ``text``; the English step is skipped (English readers get
    the same text)."""
    await owner.send(text)
    await owner.expect("Send the text for members who read English")
    await owner.press("Skip")


async def test_full_flow_queues_each_reachable_consenting_member_exactly_once(
    app: RunningBot,
) -> None:
    members = await seed_shop(app)
    async with app.session() as session:
        # Service recovery first: an open complaint holds marketing back.
        session.add(
            Ticket(
                member_id=members["bo"].id, kind=TicketKind.COMPLAINT, status=TicketStatus.OPEN,
                created_at=app.clock.now(), updated_at=app.clock.now(),
            )
        )  # fmt: skip
        await session.commit()
    users = member_users(app)
    tasks = await watchers(app)
    owner = app.user(OWNER_ID, first_name="Boss", language_code="en")

    await press_to_text_step(owner, "All members (3)")
    await one_text_for_all(owner, "Hello {{ name }}, spring is here!")
    await owner.expect("Send a photo")
    await owner.press("Skip — no photo")
    await owner.expect("Attach a coupon?")
    await owner.press("Spring sale — 10% off")
    summary = await owner.expect("Preview for")
    preview = owner.messages[-2]  # the English reader's preview
    assert preview.text is not None and preview.text.startswith("Hello Anna, spring is here!")
    assert "Spring sale" in preview.text and "ABCD-2345" in preview.text
    assert "Anna" in summary.text and "Recipients right now: 3" in (summary.text or "")

    await owner.press("Send now")
    await owner.expect("Send this broadcast to 3 members now?")
    await owner.press("✅ Yes, send now")
    await owner.expect("Starting")

    async def launched() -> bool:
        async with app.session() as session:
            return bool(await session.scalar(select(Campaign.launched_at)))

    await eventually(launched)
    rows = await outbox_rows(app)
    by_member = {row.member_id: row for row in rows}
    assert len(rows) == 2 and set(by_member) == {members["anna"].id, members["chen"].id}
    campaign = await only_campaign(app)
    assert campaign.recipients == 3 and campaign.queued == 2 and campaign.coupons_issued == 2
    assert campaign.skipped == {"service_recovery": 1}
    assert all(
        row.idempotency_key == f"campaign:{campaign.id}:member:{row.member_id}" for row in rows
    )

    worker = DeliveryWorker(app.bot, app.services.session_factory, app.config, app.clock)
    assert await worker.drain_once() == 2
    anna_message = await users["anna"].next_message()
    assert anna_message.text is not None and anna_message.text.startswith("Hello Anna")
    chen_message = await users["chen"].next_message()
    # Each member reads the coupon line in their own language, with their own code.
    assert "您的优惠券码" in (chen_message.text or "")
    async with app.session() as session:
        codes = {c.member_id: c.code for c in await session.scalars(select(Coupon))}
    assert codes[members["anna"].id][:4] in anna_message.text
    await users["bo"].no_message_within(0.05)

    await asyncio.wait_for(tasks.wait_idle(), 5)
    assert (await only_campaign(app)).status == CampaignStatus.DONE
    progress = await owner.expect("finished: sent 2")
    assert progress.edited
    await worker.drain_once()
    report = await owner.expect("Broadcast #1 report")
    assert "Sent: 2" in report.text and "open complaint or low score 1" in report.text

    # Launching again — as the scheduler, or after a crash reset the launch — sends nothing new.
    assert await launch_campaign(app.services.session_factory, app.config, app.clock, 1) is None
    assert await launch_due_campaigns(app.services.session_factory, app.config, app.clock) == 0
    async with app.session() as session:
        await session.execute(
            update(Campaign).values(
                status=CampaignStatus.SENDING, launched_at=None, launch_cursor=0
            )
        )
        await session.commit()
    result = await launch_campaign(app.services.session_factory, app.config, app.clock, 1)
    assert result is not None and result.queued == 0 and result.coupons == 0
    assert len(await outbox_rows(app)) == 2
    async with app.session() as session:
        assert await session.scalar(select(func.count()).select_from(Coupon)) == 2
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert "broadcast.send" in actions


async def test_unknown_placeholder_is_caught_at_preview_and_the_step_is_kept(
    app: RunningBot,
) -> None:
    await seed_shop(app)
    owner = app.user(OWNER_ID, first_name="Boss", language_code="en")
    await press_to_text_step(owner, "All members (3)")
    await owner.send("Hi {{ nmae }}!")
    problem = await owner.expect("cannot be sent")
    assert "nmae" in problem.text and "{{ name }}" in problem.text
    await owner.send("Hi {{ name }")
    await owner.expect("syntax")
    await one_text_for_all(owner, "Hi {{ name }}!")
    await owner.expect("Send a photo")
    assert await outbox_rows(app) == []


async def test_an_empty_audience_is_refused_politely_in_chinese(app: RunningBot) -> None:
    await seed_shop(app)
    owner = app.user(OWNER_ID, first_name="老板", language_code="zh")
    await owner.send("/broadcast")
    await owner.expect("新建群发")
    await owner.press("按等级……")
    await owner.expect("选择哪个等级")
    await owner.press("白金会员（0）")
    await owner.expect("没有人可以接收群发")
    # Still on the audience step: another tier works.
    await owner.press("金卡会员（1）")
    await owner.expect("请发送中文版文案")
    async with app.session() as session:
        assert await session.scalar(select(func.count()).select_from(Campaign)) == 0


async def test_photo_is_kept_and_a_scheduled_send_launches_when_its_time_comes(
    app: RunningBot,
) -> None:
    await seed_shop(app)
    member_users(app)
    owner = app.user(OWNER_ID, first_name="Boss", language_code="en")
    await press_to_text_step(owner, "All members (3)")
    await one_text_for_all(owner, "New arrivals for {{ name }}")
    await owner.expect("Send a photo")
    await owner.send("not a photo")
    await owner.expect("Send a photo")
    await owner.send_photo()
    await owner.expect("Attach a coupon?")
    await owner.press("No coupon")
    await owner.expect("Preview for")
    # The member's text, then the line that lets them opt out of marketing.
    assert owner.messages[-2].caption == "New arrivals for Anna\n\nNo more offers? Send /stop"

    await owner.press("Send at a time…")
    await owner.expect("in shop time, China Time (UTC+8):")
    await owner.send("tomorrow-ish")
    await owner.expect("couldn't read")
    await owner.send("2026-03-02 09:00")  # 11:00 in Shanghai now
    await owner.expect("already passed")
    await owner.send("2026-03-02 15:30")
    await owner.expect("Send this broadcast to 3 members at Mar 2, 15:30 shop time?")
    await owner.press("✅ Yes, schedule it")
    await owner.expect("scheduled for 2 Mar 15:30")

    factory, config, clock = app.services.session_factory, app.config, app.clock
    assert await launch_due_campaigns(factory, config, clock) == 0
    assert await outbox_rows(app) == []
    clock.set(datetime(2026, 3, 2, 7, 29, tzinfo=UTC))
    assert await launch_due_campaigns(factory, config, clock) == 0
    clock.advance(timedelta(minutes=1))
    assert await launch_due_campaigns(factory, config, clock) == 1
    rows = await outbox_rows(app)
    assert len(rows) == 3 and all(row.photo for row in rows)
    assert await launch_due_campaigns(factory, config, clock) == 0
    assert len(await outbox_rows(app)) == 3


@pytest.mark.parametrize(
    "data",
    [
        CDBroadcast(action="kind", value="all").pack(),
        CDBroadcast(action="send").pack(),
        CDBroadcast(action="unschedule", value="1").pack(),
    ],
)
async def test_forged_callbacks_and_the_command_do_nothing_for_non_staff(
    app: RunningBot, data: str
) -> None:
    await seed_shop(app)
    async with app.session() as session:
        scheduled = await create_campaign(
            session,
            app.clock,
            audience=Audience("all"),
            template="Hi {{ name }}",
            created_by=OWNER_ID,
            locale="en",
            scheduled_at=app.clock.now() + timedelta(hours=3),
        )
        await add_staff(
            session,
            app.config,
            app.clock,
            actor_telegram_id=OWNER_ID,
            telegram_id=1002,
            role=StaffRole.CASHIER,
        )
        await session.commit()
    assert scheduled.id == 1

    stranger = app.user(1001, first_name="Li", language_code="en")
    await stranger.send("/broadcast")
    unknown = await stranger.next_message()
    await stranger.send("/no_such_command")
    assert (await stranger.next_message()).text == unknown.text

    cashier = app.user(1002, first_name="Wang", language_code="en")
    await cashier.send("/broadcast")
    await cashier.expect("for admins and owners")

    for user in (stranger, cashier):
        callback_id = await user.press_data(data)
        await user.wait_callback_answer(callback_id)
        await user.no_message_within(0.05)
    async with app.session() as session:
        campaigns = list(await session.scalars(select(Campaign)))
    assert [(c.id, c.status) for c in campaigns] == [(1, CampaignStatus.SCHEDULED)]
    assert await outbox_rows(app) == []


async def test_a_crashed_launch_resumes_without_doubles_and_two_launchers_share_nothing(
    any_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FrozenClock(datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
    config = CareConfig(owner_ids=frozenset({OWNER_ID}))
    async with schema_session_factory(any_db_url) as factory:
        async with factory() as session:
            for i in range(10):
                await seed_member(session, clock.now(), marketing_opt_in=i % 4 != 0)
            offer = await seed_offer(session, clock.now())
            campaign = await create_campaign(
                session,
                clock,
                audience=Audience("all"),
                template="Hi {{ name }}",
                created_by=OWNER_ID,
                locale="en",
                offer_id=offer.id,
            )
            await session.commit()

        real_enqueue_many = campaigns.enqueue_many
        calls = 0

        async def power_cut_on_second_batch(*args: Any, **kwargs: Any) -> int:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise RuntimeError("power cut")
            return await real_enqueue_many(*args, **kwargs)

        monkeypatch.setattr(campaigns, "enqueue_many", power_cut_on_second_batch)
        with pytest.raises(RuntimeError):
            await launch_campaign(factory, config, clock, campaign.id, batch_size=3)
        async with factory() as session:
            assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 3
            assert await session.scalar(select(func.count()).select_from(Coupon)) == 3
        monkeypatch.setattr(campaigns, "enqueue_many", real_enqueue_many)

        # The scheduler and a second launcher at once: one holds the lease, the other waits.
        launched, second = await asyncio.gather(
            launch_due_campaigns(factory, config, clock),
            launch_campaign(factory, config, clock, campaign.id, batch_size=2),
        )
        assert launched + (second is not None) == 1
        async with factory() as session:
            rows = list(await session.scalars(select(OutboxMessage)))
            coupons = list(await session.scalars(select(Coupon)))
            stored = await session.get(Campaign, campaign.id)
        assert len(rows) == len({row.member_id for row in rows}) == 7
        assert Counter(c.member_id for c in coupons) == Counter(row.member_id for row in rows)
        assert stored is not None and stored.launched_at is not None
        assert (stored.queued, stored.coupons_issued) == (7, 7)
        assert not stored.skipped  # the audience itself leaves the three without consent out


async def test_an_offer_switched_off_before_the_send_holds_the_broadcast_back(
    sqlite_url: str,
) -> None:
    clock = FrozenClock(datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
    async with schema_session_factory(sqlite_url) as factory:
        async with factory() as session:
            for _ in range(3):
                await seed_member(session, clock.now())
            offer = await seed_offer(session, clock.now())
            campaign = await create_campaign(
                session,
                clock,
                audience=Audience("all"),
                template="Hi {{ name }}",
                created_by=OWNER_ID,
                locale="en",
                offer_id=offer.id,
            )
            offer.is_active = False
            await session.commit()
        result = await launch_campaign(factory, CareConfig(), clock, campaign.id)
        assert result is not None and result.queued == 0
        assert dict(result.skipped) == {"offer_gone": 3}
        async with factory() as session:
            assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
            assert await session.scalar(select(func.count()).select_from(Coupon)) == 0


async def test_owner_cancels_a_scheduled_broadcast_before_it_starts(app: RunningBot) -> None:
    await seed_shop(app)
    async with app.session() as session:
        await create_campaign(
            session,
            app.clock,
            audience=Audience("all"),
            template="Hi {{ name }}",
            created_by=OWNER_ID,
            locale="en",
            scheduled_at=app.clock.now() + timedelta(hours=3),
        )
        await session.commit()
    owner = app.user(OWNER_ID, first_name="Boss", language_code="en")
    await owner.send("/broadcast")
    start = await owner.expect("#1 scheduled for 2 Mar 14:00")
    await owner.press("Cancel scheduled #1", start)
    await owner.expect("Scheduled broadcast #1 cancelled")
    app.clock.advance(timedelta(hours=4))
    factory, config, clock = app.services.session_factory, app.config, app.clock
    assert await launch_due_campaigns(factory, config, clock) == 0
    assert (await only_campaign(app)).status == CampaignStatus.CANCELLED
    assert await outbox_rows(app) == []
