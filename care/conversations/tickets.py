"""Feedback tickets: a shopper's complaint, suggestion, praise or question, and its thread.

The shopper opens a ticket and may write back into it; staff answer in the chat (the answer
goes out through the outbox with a "write back" button) and close it, which asks the shopper
to rate how it was handled (a ``SurveyKind.TICKET`` invitation).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from care.conversations.surveys import create_invitation, invitation_markup, invitation_text
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import translator
from care.messaging.outbox import enqueue
from care.staff.alerts import alert_staff
from storage.enums import (
    MemberStatus,
    MessageAuthor,
    MessageKind,
    SurveyKind,
    TicketKind,
    TicketStatus,
)
from storage.models import Member, Ticket, TicketMessage
from storage.repos.members import MemberRepo
from storage.repos.tickets import TicketRepo

# Room for the longest wrapper text around a message inside Telegram's 4096 characters.
MAX_TEXT_CHARS = 3000
WRITE_BACK_PREFIX = "tkw:"
ALERT_EXCERPT_CHARS = 300


class TicketError(Exception):
    """A ticket operation that cannot be done; ``reason`` says why.

    ``"not_found"``, ``"closed"``, ``"member_gone"`` (the shopper deleted their data),
    ``"empty"`` or ``"too_long"``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def write_back_data(ticket_id: int) -> str:
    """Callback data of the "write back" button under a staff answer."""
    return f"{WRITE_BACK_PREFIX}{ticket_id}"


def parse_write_back(data: str | None) -> int | None:
    if not data or not data.startswith(WRITE_BACK_PREFIX):
        return None
    tail = data.removeprefix(WRITE_BACK_PREFIX)
    return int(tail) if tail.isdigit() else None


def check_message(text: str | None, photo_file_id: str | None) -> str | None:
    """The text a ticket message would store (trimmed, or None with a photo alone).

    Raises ``TicketError`` ("empty" for neither text nor photo, "too_long" over
    ``MAX_TEXT_CHARS``).
    """
    text = (text or "").strip() or None
    if text is None and photo_file_id is None:
        raise TicketError("empty")
    if text is not None and len(text) > MAX_TEXT_CHARS:
        raise TicketError("too_long")
    return text


async def open_ticket(
    session: AsyncSession,
    clock: Clock,
    *,
    member: Member,
    kind: TicketKind,
    text: str | None,
    photo_file_id: str | None,
) -> Ticket:
    """Open a ticket with the shopper's first message (text, a photo, or both).

    The returned ticket has its thread loaded. Raises ``TicketError`` ("empty", "too_long").
    """
    text = check_message(text, photo_file_id)
    now = clock.now()
    first = TicketMessage(
        author=MessageAuthor.MEMBER, text=text, photo_file_id=photo_file_id, created_at=now
    )
    return await TicketRepo(session).add(
        Ticket(
            member_id=member.id,
            kind=kind,
            status=TicketStatus.OPEN,
            created_at=now,
            updated_at=now,
            messages=[first],
        )
    )


async def add_member_message(
    session: AsyncSession,
    clock: Clock,
    *,
    ticket: Ticket,
    text: str | None,
    photo_file_id: str | None,
) -> TicketMessage:
    """Append the shopper's message to their ticket; an answered ticket waits for staff again."""
    if ticket.status == TicketStatus.CLOSED:
        raise TicketError("closed")
    text = check_message(text, photo_file_id)
    now = clock.now()
    message = await TicketRepo(session).add_message(
        TicketMessage(
            ticket_id=ticket.id,
            author=MessageAuthor.MEMBER,
            text=text,
            photo_file_id=photo_file_id,
            created_at=now,
        )
    )
    ticket.status = TicketStatus.OPEN
    ticket.updated_at = now
    await session.flush()
    return message


async def notify_staff(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    *,
    ticket: Ticket,
    message: TicketMessage,
    member: Member,
) -> int:
    """Tell staff that a shopper opened a ticket or wrote into one. Returns alerts queued."""
    first = message.id == await TicketRepo(session).first_message_id(ticket.id)
    excerpt = (message.text or "")[:ALERT_EXCERPT_CHARS]
    return await alert_staff(
        session,
        clock,
        config,
        key=f"ticket:{ticket.id}:msg:{message.id}",
        text_key=f"feedback.alert.{'new' if first else 'more'}_{ticket.kind}",
        number=ticket.id,
        about_member_id=member.id,
        name=member.name or member.member_code,
        code=member.member_code,
        text=excerpt,
        photo="📷" if message.photo_file_id else "",
    )


async def current_ticket(session: AsyncSession, member: Member) -> Ticket | None:
    """The member's newest ticket that is not closed yet."""
    return await TicketRepo(session).latest_unclosed_for_member(member.id)


async def member_ticket(session: AsyncSession, member: Member, ticket_id: int) -> Ticket | None:
    """The ticket if it belongs to ``member`` (whatever its status), else None."""
    ticket = await TicketRepo(session).get(ticket_id)
    return ticket if ticket is not None and ticket.member_id == member.id else None


async def _reachable_member(session: AsyncSession, ticket: Ticket) -> Member:
    member = await MemberRepo(session).get(ticket.member_id)
    if member is None or member.status == MemberStatus.DELETED or member.chat_id is None:
        raise TicketError("member_gone")
    return member


async def staff_reply(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    *,
    ticket_id: int,
    staff_telegram_id: int,
    text: str,
) -> Ticket:
    """Record a staff answer and send it to the shopper with a button to write back.

    Raises ``TicketError`` ("not_found", "closed", "member_gone", "empty", "too_long").
    An answer is a service message the shopper is waiting for: it ignores quiet hours.
    """
    repo = TicketRepo(session)
    ticket = await repo.get(ticket_id)
    if ticket is None:
        raise TicketError("not_found")
    if ticket.status == TicketStatus.CLOSED:
        raise TicketError("closed")
    body = check_message(text, None)
    member = await _reachable_member(session, ticket)
    now = clock.now()
    message = await repo.add_message(
        TicketMessage(
            ticket_id=ticket.id,
            author=MessageAuthor.STAFF,
            staff_telegram_id=staff_telegram_id,
            text=body,
            created_at=now,
        )
    )
    ticket.status = TicketStatus.ANSWERED
    ticket.updated_at = now
    t = translator(member.locale)
    assert member.chat_id is not None  # checked by _reachable_member
    await enqueue(
        session,
        clock,
        config,
        key=f"ticket:{ticket.id}:reply:{message.id}",
        chat_id=member.chat_id,
        text=t("feedback.reply.to_member", number=ticket.id, text=body),
        kind=MessageKind.SERVICE,
        member=member,
        reply_markup=_button(t.plain("feedback.reply.write_back"), write_back_data(ticket.id)),
        respect_quiet_hours=False,
    )
    await session.flush()
    return ticket


async def close_ticket(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    *,
    ticket_id: int,
    staff_telegram_id: int,
) -> Ticket:
    """Close a ticket and ask the shopper (through the outbox) to rate how it was handled.

    Closing a closed ticket changes nothing and sends nothing. A shopper who switched surveys
    off, or deleted their data, is not asked. Raises ``TicketError("not_found")``.
    """
    ticket = await TicketRepo(session).get(ticket_id)
    if ticket is None:
        raise TicketError("not_found")
    if ticket.status == TicketStatus.CLOSED:
        return ticket
    now = clock.now()
    ticket.status = TicketStatus.CLOSED
    ticket.closed_at = now
    ticket.closed_by = staff_telegram_id
    ticket.updated_at = now
    await session.flush()
    member = await MemberRepo(session).get(ticket.member_id)
    if (
        member is None
        or member.status == MemberStatus.DELETED
        or member.chat_id is None
        or not member.surveys_opt_in
    ):
        return ticket
    invitation = await create_invitation(
        session, clock, member_id=member.id, kind=SurveyKind.TICKET, ticket_id=ticket.id
    )
    await enqueue(
        session,
        clock,
        config,
        key=f"ticket:{ticket.id}:rating",
        chat_id=member.chat_id,
        text=invitation_text(invitation, member.locale),
        kind=MessageKind.SERVICE,
        member=member,
        reply_markup=invitation_markup(invitation, member.locale),
    )
    return ticket


async def open_tickets(session: AsyncSession, *, limit: int, offset: int) -> list[Ticket]:
    """Tickets waiting for staff (open or answered), oldest first, threads loaded."""
    return await TicketRepo(session).unclosed_page(limit=limit, offset=offset)


async def count_open_tickets(session: AsyncSession) -> int:
    """How many tickets are not closed yet."""
    return await TicketRepo(session).count_unclosed()


async def get_ticket(session: AsyncSession, ticket_id: int) -> Ticket | None:
    """One ticket with its thread loaded."""
    return await TicketRepo(session).get(ticket_id, with_messages=True)


def _button(label: str, data: str) -> dict[str, object]:
    return {"inline_keyboard": [[{"text": label, "callback_data": data}]]}
