"""My data: see everything stored about me; delete it for good after a confirmation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from care.conversations.surveys import create_invitation
from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.loyalty.coupons import issue_coupon
from care.loyalty.offers import rule_offer
from care.loyalty.purchases import record_purchase
from care.members.membership import TelegramIdentity, create_member, find_member
from care.members.privacy import delete_member_data, export_member_data
from care.members.registration import RegistrationAnswers, complete_registration, set_consent
from storage.db import create_engine, create_session_factory
from storage.enums import ConsentKind, SurveyKind
from storage.models import (
    DEFAULT_TIERS,
    AuditEntry,
    Base,
    CareTouch,
    FsmRecord,
    Member,
    OutboxMessage,
    Purchase,
    SurveyResponse,
    Ticket,
    TicketMessage,
    Tier,
)
from tests.conftest import RunningBot
from tests.journey_helpers import (
    eventually,
    label,
    member_of,
    register,
    settled,
    wait_button,
    without_throttling,
)

TELEGRAM_ID = 770_011_223
NAME = "Zhuzhu Unique"
PHONE = "+8613712345678"


@pytest.fixture
def app(app: RunningBot) -> RunningBot:
    return without_throttling(app)


async def registered(app: RunningBot, locale: str = "en") -> Any:
    user = app.user(TELEGRAM_ID, first_name="Zz", language_code=locale, phone_number=PHONE)
    await register(
        user, locale, marketing=True, name=NAME, birthday="1991-08-09", interests=("fresh",)
    )
    return user


async def seed_history(app: RunningBot) -> int:
    """Purchases, a coupon, a ticket thread, an answered survey, queued care, audit: the lot."""
    member = await member_of(app, TELEGRAM_ID)
    assert member is not None
    async with app.session() as session:
        for number in range(3):
            await record_purchase(
                session,
                app.config,
                app.clock,
                member_id=member.id,
                amount_minor=8_800,
                receipt_id=f"P-{number}",
            )
        offer = await rule_offer(session, app.clock, app.config, "welcome")
        await issue_coupon(session, app.clock, member_id=member.id, offer=offer, source="welcome")
        ticket = Ticket(
            member_id=member.id,
            kind="complaint",
            status="closed",
            created_at=app.clock.now(),
            updated_at=app.clock.now(),
        )
        session.add(ticket)
        await session.flush()
        session.add(
            TicketMessage(
                ticket_id=ticket.id,
                author="member",
                text=f"I am {NAME}, call me on {PHONE}",
                media_kind="photo",
                file_id="photo-of-receipt",
                created_at=app.clock.now(),
            )
        )
        invitation = await create_invitation(
            session, app.clock, member_id=member.id, kind=SurveyKind.CSAT
        )
        invitation.answered_at = app.clock.now()
        session.add(
            SurveyResponse(
                invitation_id=invitation.id,
                member_id=member.id,
                kind="csat",
                score=2,
                comment=f"{NAME} here: the queue was long",
                created_at=app.clock.now(),
            )
        )
        await create_invitation(session, app.clock, member_id=member.id, kind=SurveyKind.NPS)
        session.add(
            OutboxMessage(
                idempotency_key=f"birthday:{member.id}:2026",
                member_id=member.id,
                chat_id=TELEGRAM_ID,
                kind="marketing",
                text=f"Happy birthday, {NAME}!",
                status="queued",
                not_before=app.clock.now(),
                created_at=app.clock.now(),
            )
        )
        session.add(
            CareTouch(
                rule="birthday",
                member_id=member.id,
                occasion="2026",
                arm="treatment",
                decided_at=app.clock.now(),
            )
        )
        session.add(
            AuditEntry(
                actor_telegram_id=900001,
                actor_role="owner",
                action="member.view",
                target=f"member:{member.id}",
                details={"phone": PHONE, "name": NAME},
                created_at=app.clock.now(),
            )
        )
        await session.commit()
    return member.id


@pytest.mark.parametrize(
    ("locale", "title"), [("zh", "我们保存的关于您的全部信息"), ("en", "Everything")]
)
async def test_mydata_shows_everything_and_sends_a_json_copy(
    app: RunningBot, locale: str, title: str
) -> None:
    user = await registered(app, locale)
    await seed_history(app)
    await user.send("/mydata")
    text = await user.expect(title)
    document = await user.wait_until(lambda m: m.document is not None)
    consent_time = app.clock.now().strftime("%Y-%m-%d %H:%M")
    for value in (NAME, PHONE, "1991-08-09", label(locale, "interest.fresh"), consent_time):
        assert value in (text.text or "")
    assert ("消费次数：3" if locale == "zh" else "Purchases: 3") in (text.text or "")

    assert document.document is not None
    filename, content = document.document
    assert filename.endswith(".json")
    data = json.loads(content)
    assert data["profile"]["name"] == NAME
    assert data["profile"]["phone"] == PHONE
    assert data["profile"]["interests"] == ["fresh"]
    assert data["consent"]["offers"] is True
    assert [e["kind"] for e in data["consent"]["events"]] == ["profile", "marketing"]
    assert data["loyalty"]["purchases"] == 3
    assert len(data["coupons"]) == 1
    assert data["feedback"] == {"tickets": 1, "surveys_answered": 1}


async def traces(session: AsyncSession) -> list[tuple[str, str]]:
    """(table, what) for every row of every table that still mentions the person."""
    found = []
    for table in Base.metadata.sorted_tables:
        for row in (await session.execute(select(table))).all():
            flat = json.dumps([str(value) for value in row], ensure_ascii=False)
            for needle in (str(TELEGRAM_ID), NAME, PHONE, "1991-08-09", "photo-of-receipt"):
                if needle in flat:
                    found.append((table.name, needle))
    return found


async def test_saying_no_to_deletion_keeps_everything(app: RunningBot) -> None:
    user = await registered(app)
    await user.send("/delete_me")
    await wait_button(user, label("en", "delete.no"))
    await user.press(label("en", "delete.no"))
    await user.expect("Nothing was deleted")
    member = await member_of(app, TELEGRAM_ID)
    assert member is not None and member.name == NAME and member.status == "active"


async def test_deletion_really_deletes_and_the_person_can_join_again(app: RunningBot) -> None:
    user = await registered(app)
    member_id = await seed_history(app)
    old = await member_of(app, TELEGRAM_ID)
    assert old is not None
    # A half-finished settings conversation leaves a state row behind to be forgotten too.
    await user.press(label("en", "menu.settings"))
    await wait_button(user, label("en", "settings.btn_timezone"))
    await user.press(label("en", "settings.btn_timezone"))
    await wait_button(user, label("en", "tz.location_button"))

    async with app.session() as session:
        # The scan finds the person everywhere before the deletion, so it can see them after.
        assert {
            "members",
            "ticket_messages",
            "survey_responses",
            "outbox",
            "audit_log",
            "fsm_state",
        } <= {table for table, _ in await traces(session)}

    await user.send("/delete_me")
    await wait_button(user, label("en", "delete.yes"))
    await user.press(label("en", "delete.yes"))
    done = await user.expect("All your data has been deleted")
    assert done.reply_markup == {"remove_keyboard": True}
    await settled(app)

    async with app.session() as session:
        assert await traces(session) == []
        shell = await session.get(Member, member_id)
        assert shell is not None
        assert shell.status == "deleted" and shell.deleted_at == app.clock.now()
        assert shell.telegram_id is None and shell.chat_id is None and shell.name is None
        assert not shell.marketing_opt_in
        # Purchases stay as anonymous aggregates; scores stay, their words do not.
        purchases = (await session.scalars(select(Purchase))).all()
        assert len(purchases) == 3 and all(p.member_id is None for p in purchases)
        response = await session.scalar(select(SurveyResponse))
        assert response is not None and response.score == 2 and response.comment is None
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
        assert await session.scalar(select(func.count()).select_from(FsmRecord)) == 0
        audit = await session.scalar(select(AuditEntry).where(AuditEntry.action == "member.view"))
        assert audit is not None and audit.details is None

    # Later, the same person is a stranger and can join again as a new member.
    await user.send("/card")
    await user.expect("send /start")
    await register(user, "en", name="Zhuzhu Again")
    again = await member_of(app, TELEGRAM_ID)
    assert again is not None and again.id != member_id
    assert again.member_code != old.member_code
    assert again.status == "active" and again.name == "Zhuzhu Again"


async def test_mydata_for_a_stranger_says_nothing_is_stored(app: RunningBot) -> None:
    stranger = app.user(7002, language_code="zh")
    await stranger.send("/mydata")
    await stranger.expect("没有保存任何关于您的信息")
    await stranger.send("/delete_me")
    await stranger.expect("没有保存任何关于您的信息")

    async def nothing_created() -> bool:
        async with app.session() as session:
            return await session.scalar(select(func.count()).select_from(Member)) == 0

    await eventually(nothing_created, "no member row exists")


async def test_deletion_and_export_run_on_every_backend(
    any_db_url: str, clock: FrozenClock
) -> None:
    """The care functions alone, on SQLite and PostgreSQL (same statements, no dialect tricks)."""
    engine = create_engine(any_db_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
            await connection.execute(insert(Tier), [dict(tier) for tier in DEFAULT_TIERS])
        factory = create_session_factory(engine)
        config = CareConfig()
        async with factory() as session:
            identity = TelegramIdentity(user_id=TELEGRAM_ID, chat_id=TELEGRAM_ID, first_name=NAME)
            member = await create_member(session, identity, config, clock)
            await set_consent(session, clock, member, ConsentKind.PROFILE, True, "test")
            await complete_registration(
                session,
                clock,
                member,
                RegistrationAnswers(
                    name=NAME, phone=PHONE, birthday=None, interests=["home"], marketing=True
                ),
            )
            await record_purchase(
                session, config, clock, member_id=member.id, amount_minor=5_000, receipt_id="X1"
            )
            await session.commit()

        async with factory() as session:
            found = await find_member(session, TELEGRAM_ID)
            assert found is not None
            exported = await export_member_data(session, found)
            assert exported["profile"]["phone"] == PHONE
            assert exported["loyalty"]["purchases"] == 1
            await delete_member_data(session, clock, found)
            await session.commit()

        async with factory() as session:
            assert await find_member(session, TELEGRAM_ID) is None
            assert await traces(session) == []
            purchase = await session.scalar(select(Purchase))
            assert purchase is not None and purchase.member_id is None
    finally:
        await engine.dispose()
