"""Surveys: answers bound to their invitation, low scores raised to staff.

The first half drives ``care.surveys`` directly; the second half is the shopper pressing the
buttons the bot sent, through the simulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from care.clock import FrozenClock
from care.config import CareConfig
from care.members import TelegramIdentity, create_member
from care.surveys import (
    SurveyPress,
    add_comment,
    answer,
    create_invitation,
    invitation_markup,
    mark_followed_up,
    parse_press,
)
from care.tickets import open_ticket
from storage.db import create_engine, create_session_factory
from storage.enums import MemberStatus, MessageKind, SurveyKind, TicketKind
from storage.models import Base, Member, OutboxMessage, SurveyInvitation, SurveyResponse

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
            photo_file_id=None,
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
