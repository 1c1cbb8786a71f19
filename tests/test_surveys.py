"""Surveys: answers bound to their invitation, low scores raised to staff.

The first half drives ``care.conversations.surveys`` directly; the second half is the shopper
pressing the
buttons the bot sent, through the simulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from care.conversations.surveys import (
    SurveyPress,
    add_comment,
    answer,
    create_invitation,
    invitation_markup,
    invitation_text,
    mark_followed_up,
    parse_press,
)
from care.conversations.tickets import open_ticket
from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.core.i18n import translator
from care.members.membership import TelegramIdentity, create_member
from care.messaging.delivery import DeliveryWorker
from care.messaging.outbox import enqueue
from care.messaging.ratelimit import RateLimiter
from care.staff.alerts import alert_staff
from care.staff.roles import add_staff
from storage.db import create_engine, create_session_factory
from storage.enums import MemberStatus, MessageKind, StaffRole, SurveyKind, TicketKind
from storage.models import Base, Member, OutboxMessage, SurveyInvitation, SurveyResponse
from tests.conftest import RunningBot
from tests.simulator import SimUser
from tests.staff_helpers import make_member

OWNER = 900001
CONFIG = CareConfig(owner_ids=frozenset({OWNER}), staff_chat_id=-100777)


@pytest.fixture
async def session(any_db_url: str) -> AsyncIterator[AsyncSession]:
    engine = create_engine(any_db_url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    async with create_session_factory(engine)() as session:
        yield session
    await engine.dispose()


async def new_member(session: AsyncSession, clock: FrozenClock, user_id: int = 1001) -> Member:
    identity = TelegramIdentity(user_id=user_id, chat_id=user_id, first_name="Li")
    return await create_member(session, identity, CONFIG, clock, status=MemberStatus.ACTIVE)


def press(invitation: SurveyInvitation, step: str, value: int = 0) -> SurveyPress:
    data = f"sv:{invitation.id}:{invitation.nonce}:{step}:{value}"
    parsed = parse_press(data)
    assert parsed is not None
    return parsed


async def alerts(session: AsyncSession) -> list[OutboxMessage]:
    return list(
        await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.kind == MessageKind.ALERT)
            .order_by(OutboxMessage.id)
        )
    )


async def test_csat_expectation_and_comment_each_once(
    session: AsyncSession, clock: FrozenClock
) -> None:
    member = await new_member(session, clock)
    invitation = await create_invitation(session, clock, member_id=member.id, kind=SurveyKind.CSAT)
    markup = invitation_markup(invitation, "en")
    scores = [parse_press(b["callback_data"]) for b in markup["inline_keyboard"][0]]  # type: ignore[index]
    assert [p.value for p in scores if p] == [1, 2, 3, 4, 5]

    outcome = await answer(session, clock, CONFIG, member=member, press=press(invitation, "s", 4))
    assert (outcome.status, outcome.next_step) == ("ok", "expectation")
    again = await answer(session, clock, CONFIG, member=member, press=press(invitation, "s", 1))
    assert again.status == "already_answered"

    outcome = await answer(session, clock, CONFIG, member=member, press=press(invitation, "e", 2))
    assert (outcome.status, outcome.next_step) == ("ok", "comment")
    again = await answer(session, clock, CONFIG, member=member, press=press(invitation, "e", 0))
    assert again.status == "already_answered"

    outcome = await answer(session, clock, CONFIG, member=member, press=press(invitation, "c"))
    assert outcome.next_step == "await_comment"
    outcome = await add_comment(
        session,
        clock,
        CONFIG,
        member=member,
        invitation_id=invitation.id,
        nonce=invitation.nonce,
        text="Friendly staff",
    )
    assert outcome.status == "ok"
    again = await add_comment(
        session,
        clock,
        CONFIG,
        member=member,
        invitation_id=invitation.id,
        nonce=invitation.nonce,
        text="Changed my mind",
    )
    assert again.status == "already_answered"

    response = await session.scalar(select(SurveyResponse))
    assert response is not None
    assert (response.score, response.expectation, response.comment) == (
        4,
        "better",
        "Friendly staff",
    )
    assert response.needs_followup is False
    assert await alerts(session) == []


async def test_refusals_change_nothing(session: AsyncSession, clock: FrozenClock) -> None:
    member = await new_member(session, clock)
    stranger = await new_member(session, clock, 1002)
    invitation = await create_invitation(
        session, clock, member_id=member.id, kind=SurveyKind.NPS, ttl=timedelta(days=1)
    )
    forged = SurveyPress(invitation.id, "x" * len(invitation.nonce), "s", 10)
    assert (await answer(session, clock, CONFIG, member=member, press=forged)).status == "invalid"
    unknown = SurveyPress(invitation.id + 1, invitation.nonce, "s", 10)
    assert (await answer(session, clock, CONFIG, member=member, press=unknown)).status == "invalid"
    out_of_range = press(invitation, "s", 11)
    outcome = await answer(session, clock, CONFIG, member=member, press=out_of_range)
    assert outcome.status == "invalid"
    theirs = await answer(session, clock, CONFIG, member=stranger, press=press(invitation, "s", 9))
    assert theirs.status == "not_yours"
    nobody = await answer(session, clock, CONFIG, member=None, press=press(invitation, "s", 9))
    assert nobody.status == "not_yours"
    early_comment = await answer(
        session, clock, CONFIG, member=member, press=press(invitation, "c")
    )
    assert early_comment.status == "invalid"
    clock.advance(days=1)
    late = await answer(session, clock, CONFIG, member=member, press=press(invitation, "s", 9))
    assert late.status == "expired"
    assert await session.scalar(select(SurveyResponse)) is None
    assert invitation.answered_at is None
    assert parse_press("sv:1:abc:s") is None and parse_press("sv:x:abc:s:1") is None


async def test_detractor_is_flagged_and_staff_alerted_once(
    session: AsyncSession, clock: FrozenClock
) -> None:
    member = await new_member(session, clock)
    invitation = await create_invitation(session, clock, member_id=member.id, kind=SurveyKind.NPS)
    outcome = await answer(session, clock, CONFIG, member=member, press=press(invitation, "s", 6))
    assert outcome.needs_followup and outcome.next_step == "comment"
    sent = await alerts(session)
    assert CONFIG.staff_chat_id is not None
    assert sorted(a.chat_id for a in sent) == sorted([OWNER, CONFIG.staff_chat_id])
    assert all("6/10" in a.text and member.member_code in a.text for a in sent)

    await answer(session, clock, CONFIG, member=member, press=press(invitation, "c"))
    await add_comment(
        session,
        clock,
        CONFIG,
        member=member,
        invitation_id=invitation.id,
        nonce=invitation.nonce,
        text="Queue <too> long",
    )
    sent = await alerts(session)
    assert len(sent) == 4
    assert "Queue &lt;too&gt; long" in sent[-1].text

    assert outcome.response is not None
    await mark_followed_up(
        session, clock, response_id=outcome.response.id, staff_telegram_id=OWNER
    )
    first = outcome.response.followed_up_at
    clock.advance(hours=1)
    await mark_followed_up(session, clock, response_id=outcome.response.id, staff_telegram_id=1)
    assert outcome.response.followed_up_at == first and outcome.response.followed_up_by == OWNER
    with pytest.raises(LookupError):
        await mark_followed_up(session, clock, response_id=999, staff_telegram_id=OWNER)


@pytest.mark.parametrize(
    ("kind", "score", "flagged"),
    [
        (SurveyKind.NPS, 7, False),
        (SurveyKind.NPS, 0, True),
        (SurveyKind.CSAT, 3, False),
        (SurveyKind.CSAT, 2, True),
        (SurveyKind.TICKET, 3, False),
        (SurveyKind.TICKET, 2, True),
    ],
)
async def test_followup_thresholds(
    session: AsyncSession, clock: FrozenClock, kind: SurveyKind, score: int, flagged: bool
) -> None:
    member = await new_member(session, clock)
    ticket_id = None
    if kind == SurveyKind.TICKET:
        ticket = await open_ticket(
            session,
            clock,
            member=member,
            kind=TicketKind.COMPLAINT,
            text="Late delivery",
        )
        ticket_id = ticket.id
    invitation = await create_invitation(
        session, clock, member_id=member.id, kind=kind, ticket_id=ticket_id
    )
    outcome = await answer(
        session, clock, CONFIG, member=member, press=press(invitation, "s", score)
    )
    assert outcome.status == "ok"
    assert outcome.needs_followup is flagged
    assert bool(await alerts(session)) is flagged
    if ticket_id is not None:
        assert ticket.handling_rating == score


# --------------------------------------------------------------------------------------------
# End to end: the shopper answers the invitation the bot sent, by pressing its buttons.


async def member_user(app: RunningBot, user_id: int, locale: str) -> tuple[int, SimUser]:
    async with app.session() as session:
        member = await make_member(
            session, app.config, app.clock, user_id, "Ann", language_code=locale
        )
        await session.commit()
    user = app.user(user_id, first_name="Ann", language_code=locale)
    await user.send("/points")  # the bot may only write to people who wrote to it first
    await user.next_message()
    return member.id, user


async def invite(
    app: RunningBot, member_id: int, kind: SurveyKind, ttl: timedelta = timedelta(days=7)
) -> SurveyInvitation:
    """What the care engine does: an invitation, queued through the outbox, delivered."""
    async with app.session() as session:
        member = await session.get(Member, member_id)
        assert member is not None and member.chat_id is not None
        invitation = await create_invitation(
            session, app.clock, member_id=member_id, kind=kind, ttl=ttl
        )
        await enqueue(
            session, app.clock, app.config, key=f"test:survey:{invitation.id}",
            chat_id=member.chat_id, text=invitation_text(invitation, member.locale),
            kind=MessageKind.SERVICE, member=member,
            reply_markup=invitation_markup(invitation, member.locale),
        )  # fmt: skip
        await session.commit()
    worker = DeliveryWorker(
        app.bot, app.services.session_factory, app.config, app.clock,
        limiter=RateLimiter(500.0, 0),
    )  # fmt: skip
    assert await worker.drain_once() == 1
    return invitation


async def settled(app: RunningBot) -> None:
    """Wait until the bot finished the updates it is handling: their commits are done."""
    assert await app.dp["update_log"].wait_idle(5.0)


async def responses(app: RunningBot) -> list[SurveyResponse]:
    await settled(app)
    async with app.session() as session:
        return list(await session.scalars(select(SurveyResponse).order_by(SurveyResponse.id)))


async def owner_alerts(app: RunningBot) -> list[OutboxMessage]:
    await settled(app)
    async with app.session() as session:
        return list(
            await session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.kind == MessageKind.ALERT, OutboxMessage.chat_id == OWNER
                )
            )
        )


async def test_csat_expectation_and_comment_in_chinese(app: RunningBot) -> None:
    member_id, user = await member_user(app, 4001, "zh")
    t = translator("zh")
    await invite(app, member_id, SurveyKind.CSAT)
    question = await user.expect("您对最近一次到店的体验满意吗？")
    await user.press("4 🙂", question)
    await user.expect(t.plain("survey.ask_expectation"))
    await user.press(t.plain("survey.expectation.better"))
    await user.expect(t.plain("survey.ask_comment"))
    await user.press(t.plain("survey.comment.add"))
    await user.expect(t.plain("survey.write_comment"))
    await user.send_sticker()  # not a comment, but not lost: it reaches the shop
    kept = await user.expect("请用文字写下您的看法")
    assert kept.text.startswith(t.plain("conversation.kept"))
    await user.send("店员很热情")
    await user.expect(t.plain("survey.comment_thanks"))

    [response] = await responses(app)
    assert (response.kind, response.score, response.expectation, response.comment) == (
        "csat",
        4,
        "better",
        "店员很热情",
    )
    assert not response.needs_followup
    # The sticker's conversation alert only: a good score raises none.
    [alert] = await owner_alerts(app)
    assert "新消息" in (alert.text or "") and "🖼" in (alert.text or "")


async def test_nps_skip_then_detractor_with_comment_in_english(app: RunningBot) -> None:
    member_id, user = await member_user(app, 4002, "en")
    t = translator("en")
    first = await invite(app, member_id, SurveyKind.NPS)
    question = await user.expect("How likely are you to recommend us")
    await user.press("9", question)
    await user.expect("Would you like to tell us why?")
    await user.press(t.plain("survey.comment.skip"))
    await user.expect("invite with /invite")  # a promoter is asked to bring a friend
    assert await owner_alerts(app) == []

    await invite(app, member_id, SurveyKind.NPS)
    question = await user.expect("How likely are you to recommend us")
    await user.press("3", question)
    await user.expect("Would you like to tell us why?")
    assert len(await owner_alerts(app)) == 1  # at once, before any comment
    await user.press(t.plain("survey.comment.add"))
    await user.expect("Please write your comment")
    await user.send("Too expensive & slow")
    await user.expect("someone from our team will get in touch")

    promoter, detractor = await responses(app)
    assert (promoter.invitation_id, promoter.score, promoter.comment) == (first.id, 9, "")
    assert not promoter.needs_followup
    assert (detractor.score, detractor.comment, detractor.needs_followup) == (
        3,
        "Too expensive & slow",
        True,
    )
    texts = [alert.text for alert in await owner_alerts(app)]
    assert len(texts) == 2
    assert any("3/10" in text for text in texts)
    assert any("Too expensive &amp; slow" in text for text in texts)


async def test_replayed_forged_foreign_and_expired_buttons_change_nothing(
    app: RunningBot,
) -> None:
    member_id, user = await member_user(app, 4003, "en")
    _, other = await member_user(app, 4004, "en")
    t = translator("en")

    answered = await invite(app, member_id, SurveyKind.CSAT)
    question = await user.expect("How satisfied were you")
    five = question.inline_button("5 😄")
    one = question.inline_button("1 😞")
    assert five is not None and one is not None
    await user.press("5 😄", question)
    await user.expect(t.plain("survey.ask_expectation"))

    async def refused(who: SimUser, data: str, key: str) -> None:
        callback = await who.press_data(data)
        reply = await who.wait_callback_answer(callback)
        assert reply.text == t.plain(f"survey.refused.{key}")

    await refused(user, five["callback_data"], "already_answered")  # replayed
    await refused(user, one["callback_data"], "already_answered")  # a second answer
    forged = f"sv:{answered.id}:{'A' * len(answered.nonce)}:s:1"
    await refused(user, forged, "invalid")
    await refused(user, f"sv:{answered.id}:口令:s:1", "invalid")
    await refused(user, "sv:not-a-survey", "invalid")

    pending = await invite(app, member_id, SurveyKind.NPS, ttl=timedelta(days=1))
    question = await user.expect("How likely are you to recommend us")
    zero = question.inline_button("0")
    assert zero is not None
    await refused(other, zero["callback_data"], "not_yours")  # someone else's button
    app.clock.advance(days=2)
    await refused(user, zero["callback_data"], "expired")

    [response] = await responses(app)
    assert (response.invitation_id, response.score) == (answered.id, 5)
    await settled(app)
    async with app.session() as session:
        still_open = await session.get(SurveyInvitation, pending.id)
    assert still_open is not None and still_open.answered_at is None
    assert await owner_alerts(app) == []
    assert len(other.messages) == 1  # their own /points answer, nothing more


async def test_low_csat_flags_followup_and_alerts_staff(app: RunningBot) -> None:
    member_id, user = await member_user(app, 4005, "en")
    await invite(app, member_id, SurveyKind.CSAT)
    question = await user.expect("How satisfied were you")
    await user.press("2 🙁", question)
    await user.expect(translator("en").plain("survey.ask_expectation"))
    await user.press(translator("en").plain("survey.expectation.worse"))
    await user.expect(translator("en").plain("survey.ask_comment"))
    await user.press(translator("en").plain("survey.comment.skip"))
    await user.expect("someone from our team will get in touch")

    [response] = await responses(app)
    assert response.needs_followup and response.expectation == "worse"
    [alert] = await owner_alerts(app)
    assert "2/5" in alert.text


async def test_switching_surveys_off_keeps_an_invitation_already_received(
    session: AsyncSession, clock: FrozenClock
) -> None:
    member = await new_member(session, clock)
    invitation = await create_invitation(session, clock, member_id=member.id, kind=SurveyKind.CSAT)
    member.surveys_opt_in = False  # after the invitation arrived
    outcome = await answer(session, clock, CONFIG, member=member, press=press(invitation, "s", 5))
    assert outcome.status == "ok" and outcome.response is not None
    assert outcome.response.score == 5


async def test_alerts_reach_admins_in_their_language_and_the_staff_chat_once(
    session: AsyncSession, clock: FrozenClock
) -> None:
    admin, cashier = 700001, 700002
    for telegram_id, role in ((admin, StaffRole.ADMIN), (cashier, StaffRole.CASHIER)):
        await add_staff(
            session, CONFIG, clock, actor_telegram_id=OWNER, telegram_id=telegram_id, role=role
        )
    speaker = TelegramIdentity(user_id=admin, chat_id=admin, first_name="Al", language_code="en")
    await create_member(session, speaker, CONFIG, clock, status=MemberStatus.ACTIVE)

    values: dict[str, Any] = {"name": "Li", "code": "ABCD2345", "score": 1, "number": 0}
    queued = await alert_staff(
        session,
        clock,
        CONFIG,
        key="test",
        text_key="survey.alert.low_csat",
        about_member_id=None,
        **values,
    )
    again = await alert_staff(
        session,
        clock,
        CONFIG,
        key="test",
        text_key="survey.alert.low_csat",
        about_member_id=None,
        **values,
    )
    assert (queued, again) == (3, 0)
    # add_staff tells new staff about their role; only this occasion's alerts count here.
    by_chat = {
        alert.chat_id: alert.text
        for alert in await alerts(session)
        if alert.idempotency_key.startswith("alert:test:")
    }
    assert set(by_chat) == {OWNER, admin, CONFIG.staff_chat_id}  # no cashier
    assert by_chat[admin] == translator("en")("survey.alert.low_csat", **values)
    assert by_chat[OWNER] == translator("zh")("survey.alert.low_csat", **values)
