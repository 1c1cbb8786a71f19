"""Campaign content end to end: consent beside the lifecycle stages, the opt-out line that
ends every marketing message, each member's language, and the send time staff are shown.

Driven through the simulator as the shopper and the owner would, in Chinese and English.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from care.automation import engine
from care.loyalty.purchases import record_purchase
from care.messaging.delivery import DeliveryWorker
from care.segments.lifecycle import refresh_segments
from storage import migrate
from storage.db import create_engine
from storage.enums import LifecycleStage
from storage.models import Campaign, Member, Offer
from tests.conftest import RunningBot
from tests.journey_helpers import member_of, register

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

    # The owner's numbers show the opt-out as a flag, and no stage called "unsubscribed".
    owner = app.user(OWNER_ID, first_name="Boss", language_code=locale)
    await owner.send("/stats")
    stats = await owner.expect(offers_off)
    assert retired not in (stats.text or "")


async def test_migration_0008_moves_texts_names_and_retired_stages(any_db_url: str) -> None:
    db = create_engine(any_db_url)
    now = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    try:
        await migrate.upgrade(db, "0001")
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
