"""Feedback tickets at the care level: open, write back, staff answer, close and rate."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from care.conversations.surveys import parse_press
from care.conversations.tickets import (
    Media,
    TicketError,
    add_member_message,
    close_ticket,
    count_open_tickets,
    current_ticket,
    get_ticket,
    open_ticket,
    open_tickets,
    parse_write_back,
    staff_reply,
)
from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.members.membership import TelegramIdentity, create_member
from storage.db import create_engine, create_session_factory
from storage.enums import (
    MediaKind,
    MemberStatus,
    MessageKind,
    SurveyKind,
    TicketKind,
    TicketStatus,
)
from storage.models import Base, Member, OutboxMessage, SurveyInvitation

OWNER = 900001
CONFIG = CareConfig(owner_ids=frozenset({OWNER}))


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


async def outbox(session: AsyncSession) -> list[OutboxMessage]:
    return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def test_a_ticket_lives_from_open_to_rated_invitation(
    session: AsyncSession, clock: FrozenClock
) -> None:
    member = await new_member(session, clock)
    ticket = await open_ticket(
        session,
        clock,
        member=member,
        kind=TicketKind.COMPLAINT,
        text=" Cold coffee ",
    )
    assert ticket.status == TicketStatus.OPEN
    assert await count_open_tickets(session) == 1
    assert await current_ticket(session, member) is ticket

    clock.advance(minutes=5)
    await staff_reply(
        session, clock, CONFIG, ticket_id=ticket.id, staff_telegram_id=OWNER, text="So sorry!"
    )
    assert ticket.status == TicketStatus.ANSWERED
    [answer] = await outbox(session)
    assert answer.chat_id == 1001 and answer.kind == MessageKind.SERVICE
    assert "So sorry!" in answer.text and f"#{ticket.id}" in answer.text
    assert answer.not_before == clock.now()
    button = answer.reply_markup["inline_keyboard"][0][0]  # type: ignore[index]
    assert parse_write_back(button["callback_data"]) == ticket.id

    clock.advance(minutes=5)
    await add_member_message(
        session, clock, ticket=ticket, text=None, media=Media(MediaKind.PHOTO, "PHOTO")
    )
    assert ticket.status == TicketStatus.OPEN

    await close_ticket(session, clock, CONFIG, ticket_id=ticket.id, staff_telegram_id=OWNER)
    assert ticket.status == TicketStatus.CLOSED and ticket.closed_by == OWNER
    assert await count_open_tickets(session) == 0
    assert await current_ticket(session, member) is None
    rating = (await outbox(session))[-1]
    invitation = await session.scalar(select(SurveyInvitation))
    assert invitation is not None and invitation.kind == SurveyKind.TICKET
    assert invitation.ticket_id == ticket.id
    first_button = rating.reply_markup["inline_keyboard"][0][0]  # type: ignore[index]
    press = parse_press(first_button["callback_data"])
    assert press is not None and press.invitation_id == invitation.id

    # Closing again sends no second invitation.
    await close_ticket(session, clock, CONFIG, ticket_id=ticket.id, staff_telegram_id=OWNER)
    assert len(await outbox(session)) == 2

    full = await get_ticket(session, ticket.id)
    assert full is not None
    assert [(m.author, m.text, m.file_id) for m in full.messages] == [
        ("member", "Cold coffee", None),
        ("staff", "So sorry!", None),
        ("member", None, "PHOTO"),
    ]


async def test_closed_tickets_take_no_more_messages(
    session: AsyncSession, clock: FrozenClock
) -> None:
    member = await new_member(session, clock)
    ticket = await open_ticket(
        session,
        clock,
        member=member,
        kind=TicketKind.QUESTION,
        text="Open on Sunday?",
    )
    await close_ticket(session, clock, CONFIG, ticket_id=ticket.id, staff_telegram_id=OWNER)
    with pytest.raises(TicketError) as member_error:
        await add_member_message(session, clock, ticket=ticket, text="Hello?")
    assert member_error.value.reason == "closed"
    with pytest.raises(TicketError) as staff_error:
        await staff_reply(
            session, clock, CONFIG, ticket_id=ticket.id, staff_telegram_id=OWNER, text="Yes"
        )
    assert staff_error.value.reason == "closed"


async def test_bad_content_and_unknown_tickets_are_refused(
    session: AsyncSession, clock: FrozenClock
) -> None:
    member = await new_member(session, clock)
    for text, reason in (("   ", "empty"), (None, "empty"), ("x" * 3001, "too_long")):
        with pytest.raises(TicketError) as error:
            await open_ticket(
                session,
                clock,
                member=member,
                kind=TicketKind.PRAISE,
                text=text,
            )
        assert error.value.reason == reason
    with pytest.raises(TicketError) as missing:
        await staff_reply(session, clock, CONFIG, ticket_id=999, staff_telegram_id=OWNER, text="x")
    assert missing.value.reason == "not_found"
    with pytest.raises(TicketError):
        await close_ticket(session, clock, CONFIG, ticket_id=999, staff_telegram_id=OWNER)
    assert await count_open_tickets(session) == 0


async def test_inbox_lists_waiting_tickets_oldest_first(
    session: AsyncSession, clock: FrozenClock
) -> None:
    first = await new_member(session, clock, 1001)
    second = await new_member(session, clock, 1002)
    opened = []
    for member, text in ((first, "one"), (second, "two"), (first, "three")):
        opened.append(
            await open_ticket(
                session,
                clock,
                member=member,
                kind=TicketKind.SUGGESTION,
                text=text,
            )
        )
        clock.advance(minutes=1)
    await close_ticket(session, clock, CONFIG, ticket_id=opened[1].id, staff_telegram_id=OWNER)
    page = await open_tickets(session, limit=1, offset=0)
    assert [t.id for t in page] == [opened[0].id]
    assert page[0].messages[0].text == "one"
    page = await open_tickets(session, limit=5, offset=1)
    assert [t.id for t in page] == [opened[2].id]
    assert await count_open_tickets(session) == 2


async def test_no_rating_invitation_for_a_member_who_switched_surveys_off(
    session: AsyncSession, clock: FrozenClock
) -> None:
    member = await new_member(session, clock)
    member.surveys_opt_in = False
    ticket = await open_ticket(
        session,
        clock,
        member=member,
        kind=TicketKind.COMPLAINT,
        text="Broken bag",
    )
    await close_ticket(session, clock, CONFIG, ticket_id=ticket.id, staff_telegram_id=OWNER)
    assert ticket.status == TicketStatus.CLOSED
    assert await outbox(session) == []
    assert await session.scalar(select(SurveyInvitation)) is None
