"""Campaign content end to end: consent beside the lifecycle stages, the opt-out line that
ends every marketing message, each member's language, and the send time staff are shown.

Driven through the simulator as the shopper and the owner would, in Chinese and English.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from care.automation import engine
from care.campaigns.launch import launch_due_campaigns
from care.campaigns.render import Texts
from care.core.formatting import discount_label
from care.loyalty.offers import offer_name
from care.loyalty.purchases import record_purchase
from care.messaging.delivery import DeliveryWorker
from care.segments.refresh import refresh_segments
from storage import migrate
from storage.db import create_engine
from storage.enums import ConsentKind, LifecycleStage
from storage.models import Campaign, ConsentEvent, Coupon, Member, Offer, OutboxMessage
from tests.conftest import RunningBot
from tests.console_helpers import seed_member, seed_offer
from tests.journey_helpers import label, member_of, register, settled, wait_button
from tests.simulator import SimUser
from tests.test_broadcast import eventually, watchers

OWNER_ID = 900001


async def drain(app: RunningBot) -> int:
    worker = DeliveryWorker(app.bot, app.services.session_factory, app.config, app.clock)
    return await worker.drain_once()


@pytest.mark.parametrize(
    ("locale", "survey_words", "offers_off", "retired"),
    [
        ("zh", "推荐给朋友", "已关闭优惠消息：1 人", "已退订"),
        ("en", "recommend us to a friend", "Offers turned off: 1", "Unsubscribed"),
    ],
)
async def test_a_shopper_who_declined_offers_keeps_a_buying_stage_and_gets_surveys(
    app: RunningBot, locale: str, survey_words: str, offers_off: str, retired: str
) -> None:
    shopper = app.user(5101, first_name="Mei", language_code=locale)
    await register(shopper, locale, marketing=False)
    member = await member_of(app, 5101)
    assert member is not None and not member.marketing_opt_in and member.surveys_opt_in
    joined = app.clock.now()

    # Two purchases in the following months, the last a fortnight before the 90-day survey.
    factory, config = app.services.session_factory, app.config
    for days in (40, 75):
        app.clock.set(joined + timedelta(days=days))
        async with factory() as session:
            await record_purchase(
                session, config, app.clock, member_id=member.id, amount_minor=8_800
            )
            await session.commit()
    app.clock.set(joined + timedelta(days=90, hours=1))
    await refresh_segments(factory, config, app.clock)
    async with app.session() as session:
        fresh = await session.get_one(Member, member.id)
    assert fresh.lifecycle_stage == LifecycleStage.ACTIVE

    outcome = {o.rule: o for o in await engine.evaluate(factory, config, app.clock)}
    assert outcome["nps_survey"].sent == 1
    assert await drain(app) >= 1
    survey = await shopper.expect(survey_words)
    assert survey.reply_markup is not None
    # A service message: no marketing opt-out line under it.
    assert "/stop" not in survey.content

    # The owner's numbers show the opt-out as a flag, and no stage called "unsubscribed".
    owner = app.user(OWNER_ID, first_name="Boss", language_code=locale)
    await owner.send("/stats")
    stats = await owner.expect(offers_off)
    assert retired not in (stats.text or "")


async def test_migration_0006_moves_texts_names_and_retired_stages(any_db_url: str) -> None:
    db = create_engine(any_db_url)
    now = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    try:
        await migrate.upgrade(db, "0005")
        async with db.begin() as connection:
            for code, stage, bought in (("M1", "unsubscribed", None), ("M2", "unsubscribed", now),
                                        ("M3", "lapsed", now)):  # fmt: skip
                await connection.execute(
                    insert(Member.__table__).values(
                        member_code=code, status="active", lifecycle_stage=stage,
                        last_purchase_at=bought, created_at=now, updated_at=now,
                    )
                )  # fmt: skip
            for title, key in (("周末生鲜特惠", None), ("Weekend fresh deal", None),
                               ("We miss you: 15% off", "winback")):  # fmt: skip
                await connection.execute(
                    insert(Offer.__table__).values(
                        title=title, key=key, kind="percent_off", value=10, currency="CNY",
                        created_at=now,
                    )
                )  # fmt: skip
            for text, locale in (("春季上新", "zh"), ("Spring is here", "en")):
                await connection.execute(
                    insert(Campaign.__table__).values(
                        name=text, audience={"kind": "all"}, template=text, locale=locale,
                        created_at=now,
                    )
                )  # fmt: skip
        await migrate.upgrade(db)
        async with db.connect() as connection:
            rows = await connection.execute(select(Member.member_code, Member.lifecycle_stage))
            stages = {code: stage for code, stage in rows}
            names = (
                await connection.execute(
                    select(Offer.title, Offer.title_zh, Offer.title_en).order_by(Offer.id)
                )
            ).all()
            texts = (
                await connection.execute(
                    select(Campaign.template_zh, Campaign.template_en).order_by(Campaign.id)
                )
            ).all()
    finally:
        await db.dispose()
    assert stages == {"M1": "prospect", "M2": "active", "M3": "lapsed"}
    assert [tuple(row) for row in names] == [
        ("周末生鲜特惠", "周末生鲜特惠", None),
        ("Weekend fresh deal", None, "Weekend fresh deal"),
        ("We miss you: 15% off", None, None),
    ]
    assert [tuple(row) for row in texts] == [("春季上新", None), (None, "Spring is here")]


# --- a bilingual broadcast, its opt-out line, and /stop ---------------------------------------


async def tap(user: SimUser, text: str) -> None:
    """Press a button once the bot has shown it."""
    await wait_button(user, text)
    await user.press(text)


def shown(locale: str, key: str, **values: object) -> str:
    """A catalogue text as the member sees it (HTML parse mode drops the tags)."""
    return re.sub(r"<[^>]+>", "", label(locale, key, **values))


async def seed_bilingual_shop(app: RunningBot) -> dict[str, Member]:
    now = app.clock.now()
    async with app.session() as session:
        members = {
            "zh": await seed_member(
                session, now, name="小梅", telegram_id=3101, chat_id=3101, locale="zh"
            ),
            "en": await seed_member(
                session, now, name="Anna", telegram_id=3102, chat_id=3102, locale="en"
            ),
            "london": await seed_member(
                session, now, name="Tom", telegram_id=3103, chat_id=3103, locale="en",
                timezone="Europe/London",
            ),
        }  # fmt: skip
        await seed_offer(
            session, now, title="weekend-fresh-q1", title_zh="周末生鲜特惠",
            title_en="Weekend fresh deal", value=10,
        )  # fmt: skip
        await session.commit()
    return members


async def write_both_texts(owner: SimUser, locale: str) -> None:
    await owner.send("/broadcast")
    await tap(owner, label(locale, "broadcast.kind_all", n=3))
    await owner.expect(shown(locale, "content.ask_text_zh", n=1)[:20])
    await owner.send("{{ name }}，春季新品到店啦！")
    await owner.expect(shown(locale, "content.ask_text_en", n=2)[:20])
    await owner.send("Spring arrivals are in, {{ name }}!")
    await tap(owner, label(locale, "broadcast.skip_photo"))


@pytest.mark.parametrize("locale", ["zh", "en"])
async def test_a_bilingual_broadcast_reaches_each_member_in_their_language_with_a_way_out(
    app: RunningBot, locale: str
) -> None:
    members = await seed_bilingual_shop(app)
    users = {
        key: app.user(3101 + i, first_name=key, started=True) for i, key in enumerate(members)
    }
    tasks = await watchers(app)
    owner = app.user(OWNER_ID, first_name="Boss", language_code=locale)
    await write_both_texts(owner, locale)
    await owner.expect(label(locale, "broadcast.ask_coupon")[:10])
    await tap(owner, f"weekend-fresh-q1 — {describe(locale)}")

    # A preview per language, each as its readers will get it.
    await wait_button(owner, label(locale, "broadcast.send_now"))
    texts = [m.content for m in owner.messages]
    zh_preview = next(text for text in texts if text.startswith("小梅，春季新品到店啦！"))
    en_preview = next(text for text in texts if text.startswith("Spring arrivals are in, Anna!"))
    assert "周末生鲜特惠" in zh_preview and "Weekend" not in zh_preview
    assert "Weekend fresh deal" in en_preview and "weekend-fresh-q1" not in en_preview
    assert zh_preview.endswith(shown("zh", "content.opt_out"))
    assert en_preview.endswith(shown("en", "content.opt_out"))

    # Send now asks first; nothing is created until staff say yes.
    await tap(owner, label(locale, "broadcast.send_now"))
    question = await owner.expect(shown(locale, "content.confirm_send_other", n=3))
    assert shown(locale, "content.spread_others_one", n=1) in question.content
    async with app.session() as session:
        assert await session.scalar(select(func.count()).select_from(Campaign)) == 0
    # Back shows the previews again; the question comes again before anything goes.
    await tap(owner, label(locale, "content.button_back"))
    await tap(owner, label(locale, "broadcast.send_now"))
    await owner.expect(shown(locale, "content.confirm_send_other", n=3))
    await tap(owner, label(locale, "content.button_send_yes"))
    await eventually(lambda: launched(app))
    async with app.session() as session:
        campaign = await session.scalar(select(Campaign))
    assert campaign is not None and campaign.template_zh and campaign.template_en

    worker = DeliveryWorker(app.bot, app.services.session_factory, app.config, app.clock)
    # 03:00 in London: quiet hours hold Tom's until his morning.
    assert await worker.drain_once() == 2
    zh_message = await users["zh"].next_message()
    en_message = await users["en"].next_message()
    assert zh_message.content.startswith("小梅，春季新品到店啦！")
    assert "周末生鲜特惠" in zh_message.content and "Weekend" not in zh_message.content
    assert zh_message.content.endswith(shown("zh", "content.opt_out"))
    assert en_message.content.startswith("Spring arrivals are in, Anna!")
    assert "Weekend fresh deal" in en_message.content
    assert en_message.content.endswith(shown("en", "content.opt_out"))
    app.clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))  # 09:00 in London
    assert await worker.drain_once() == 1
    assert (await users["london"].next_message()).content.startswith("Spring arrivals")
    await asyncio.wait_for(tasks.wait_idle(), 5)

    # The way out works: /stop records the opt-out, says how to opt back in, and the next
    # broadcast passes the member by.
    await users["zh"].send("/stop")
    stopped = await users["zh"].expect(label("zh", "settings.stopped")[:10])
    assert "/settings" in stopped.content
    async with app.session() as session:
        member = await session.get_one(Member, members["zh"].id)
        event = await session.scalar(
            select(ConsentEvent).where(
                ConsentEvent.member_id == member.id, ConsentEvent.source == "stop_command"
            )
        )
    assert not member.marketing_opt_in and member.marketing_changed_at == app.clock.now()
    assert event is not None and (event.kind, event.granted, event.at) == (
        ConsentKind.MARKETING, False, app.clock.now(),
    )  # fmt: skip
    await owner.send("/broadcast")
    await wait_button(owner, label(locale, "broadcast.kind_all", n=2))
    await fresh_flow(owner)

    # One tap under /stop's answer turns offers back on, recorded as well.
    await tap(users["zh"], label("zh", "content.button_offers_back_on"))
    await users["zh"].expect(label("zh", "settings.offers_now_on"))
    async with app.session() as session:
        member = await session.get_one(Member, members["zh"].id)
        sources = list(
            await session.scalars(
                select(ConsentEvent.source)
                .where(ConsentEvent.member_id == member.id)
                .order_by(ConsentEvent.id)
            )
        )
    assert member.marketing_opt_in and sources[-2:] == ["stop_command", "stop_undo"]
    await owner.send("/broadcast")
    await wait_button(owner, label(locale, "broadcast.kind_all", n=3))


async def fresh_flow(owner: SimUser) -> None:
    """Leave the half-started /broadcast."""
    await owner.send("/cancel")
    await owner.next_message()


def describe(locale: str) -> str:
    return label(locale, "loyalty.offer.percent_off", discount=discount_label(10, locale))


async def launched(app: RunningBot) -> bool:
    async with app.session() as session:
        return bool(await session.scalar(select(Campaign.launched_at)))


# --- the send time members actually get -------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "held", "others"),
    [
        ("zh", "免打扰时段（21:00–09:00）内暂不发送：2 位会员将在其当地时间 3月3日 09:00 收到",
         "另有 1 位会员在其他时区"),
        ("en", "Quiet hours (21:00–09:00) hold it: 2 members get it at Mar 3, 09:00 their time",
         "1 member in another time zone gets it at a different time"),
    ],
)  # fmt: skip
async def test_a_late_evening_schedule_shows_quiet_hours_and_each_zone(
    app: RunningBot, locale: str, held: str, others: str
) -> None:
    members = await seed_bilingual_shop(app)
    owner = app.user(OWNER_ID, first_name="Boss", language_code=locale)
    await write_both_texts(owner, locale)
    await tap(owner, label(locale, "broadcast.no_coupon"))
    await tap(owner, label(locale, "broadcast.send_later"))
    await owner.expect("UTC+8")
    await owner.send("22:30")  # 11:00 in Shanghai now: tonight, 14:30 in London
    question = await owner.expect(held)
    assert others in question.content
    assert shown(locale, "content.confirm_schedule_other", n=3, when="")[:6] in question.content
    async with app.session() as session:
        assert await session.scalar(select(func.count()).select_from(Campaign)) == 0
    await tap(owner, label(locale, "content.button_schedule_yes"))
    await owner.expect("3月2日 22:30" if locale == "zh" else "2 Mar 22:30")
    async with app.session() as session:  # waits for the bot's commit
        assert await session.scalar(select(func.count()).select_from(Campaign)) == 1

    factory, config, clock = app.services.session_factory, app.config, app.clock
    clock.set(datetime(2026, 3, 2, 14, 30, tzinfo=UTC))
    assert await launch_due_campaigns(factory, config, clock) == 1
    async with app.session() as session:
        due = {
            row.member_id: row.not_before for row in await session.scalars(select(OutboxMessage))
        }
    morning = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    assert due == {
        members["zh"].id: morning,
        members["en"].id: morning,
        members["london"].id: clock.now(),
    }


# --- issuing coupons: asked first, and the report counts the coupons --------------------------


@pytest.mark.parametrize("locale", ["zh", "en"])
async def test_issue_and_notify_counts_coupons_even_when_no_notice_can_go(
    app: RunningBot, locale: str
) -> None:
    now = app.clock.now()
    async with app.session() as session:
        for i in range(2):
            await seed_member(
                session, now, telegram_id=3201 + i, chat_id=3201 + i, marketing_opt_in=False
            )
        await seed_offer(session, now, title="Spring sale", title_zh="春季特惠", value=10)
        await session.commit()
    tasks = await watchers(app)
    owner = app.user(OWNER_ID, first_name="Boss", language_code=locale)
    await owner.send("/offer")
    await tap(owner, label(locale, "offer_admin.button_issue"))
    await tap(owner, f"Spring sale — {describe(locale)}")
    await tap(owner, label(locale, "broadcast.kind_all", n=2))
    await tap(owner, label(locale, "offer_admin.button_issue_notify"))
    await owner.expect(shown(locale, "content.confirm_issue_other", n=2))
    await owner.expect(shown(locale, "content.confirm_notify_other", n=0))
    await tap(owner, label(locale, "content.button_issue_yes"))
    await asyncio.wait_for(tasks.wait_idle(), 5)
    progress = await owner.expect(
        shown(locale, "content.progress_coupons_done", id=1, coupons=2, sent=0, failed=0,
              blocked=0)
    )  # fmt: skip
    assert progress.edited
    async with app.session() as session:
        assert await session.scalar(select(func.count()).select_from(Coupon)) == 2
    await owner.send("/stats")
    await owner.expect(shown(locale, "content.stats_coupons", coupons=2).strip(" ·"))


@pytest.mark.parametrize("locale", ["zh", "en"])
async def test_a_marketing_care_message_ends_with_the_way_out(
    app: RunningBot, locale: str
) -> None:
    shopper = app.user(5201, first_name="Lin", language_code=locale)
    await register(shopper, locale, marketing=True)
    await settled(app)
    factory, config = app.services.session_factory, app.config
    outcome = {o.rule: o for o in await engine.evaluate(factory, config, app.clock)}
    assert outcome["welcome"].sent == 1
    await drain(app)
    welcome = await shopper.wait_until(lambda m: "/stop" in m.content)
    assert welcome.content.endswith(shown(locale, "content.opt_out"))
    async with app.session() as session:
        kinds = {
            row.rule: row.kind
            for row in await session.scalars(select(OutboxMessage))
            if row.rule is not None
        }
    assert kinds["welcome"] == "marketing"


def test_each_language_falls_back_to_the_other_and_rule_offers_show_no_working_title() -> None:
    texts = Texts(zh="你好", en="")
    assert (texts.for_locale("zh"), texts.for_locale("en")) == ("你好", "你好")
    assert Texts(zh="", en="Hi").for_locale("zh") == "Hi"
    assert Texts(zh="你好", en="Hi").for_locale("en") == "Hi"

    def offer(**values: object) -> Offer:
        return Offer(title="internal-q1", kind="percent_off", value=10, currency="CNY", **values)

    assert offer_name(offer(title_zh="春季特惠", title_en="Spring deal"), "en") == "Spring deal"
    assert offer_name(offer(title_zh="春季特惠"), "en") == "春季特惠"
    assert offer_name(offer(title_en="Spring deal"), "zh") == "Spring deal"
    # An offer staff made before names had languages keeps the name staff gave it …
    assert offer_name(offer(), "zh") == "internal-q1"
    # … a care rule's built-in offer never shows its English working title.
    assert offer_name(offer(key="winback"), "zh") is None
