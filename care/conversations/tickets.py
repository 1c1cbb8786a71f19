"""Conversations (kept as tickets): a shopper's complaint, suggestion, praise or question from
/feedback, or a plain "message" conversation opened by whatever the shopper writes, and its
thread.

Anything a shopper writes outside a flow joins their open conversation or opens one
(``receive_member_message``); staff answer with text or media (the answer goes out through the
outbox) and close it, which asks the shopper to rate how it was handled (a ``SurveyKind.TICKET``
invitation). Media are kept as Telegram file ids with their kind, never downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from care.conversations.surveys import create_invitation, invitation_markup, invitation_text
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import translator
from care.messaging.outbox import enqueue
from care.staff.alerts import alert_staff
from storage.enums import (
    MediaKind,
    MemberStatus,
    MessageAuthor,
    MessageKind,
    SurveyKind,
    TicketKind,
    TicketStatus,
)
from storage.models import Member, Ticket, TicketMessage
from storage.repos.members import MemberRepo
from storage.repos.surveys import SurveyRepo
from storage.repos.tickets import TicketRepo

# How an attachment shows in a one-line alert or thread.
MEDIA_ICONS: dict[str, str] = {
    MediaKind.PHOTO: "📷",
    MediaKind.VIDEO: "🎬",
    MediaKind.ANIMATION: "🎞",
    MediaKind.VOICE: "🎤",
    MediaKind.AUDIO: "🎵",
    MediaKind.VIDEO_NOTE: "📹",
    MediaKind.DOCUMENT: "📄",
    MediaKind.STICKER: "🖼",
    MediaKind.LOCATION: "📍",
}

# Room for the longest wrapper text around a message inside Telegram's 4096 characters.
MAX_TEXT_CHARS = 3000
WRITE_BACK_PREFIX = "tkw:"
ALERT_EXCERPT_CHARS = 300


# What a caption can hold under a media answer (Telegram allows 1024 characters).
MAX_CAPTION_CHARS = 900
# Media Telegram sends without a caption.
CAPTIONLESS = frozenset({MediaKind.STICKER, MediaKind.VIDEO_NOTE, MediaKind.LOCATION})


@dataclass(frozen=True, slots=True)
class Media:
    """An attachment of a conversation message: a Telegram file id and its kind.

    A location has no file: its coordinates travel as the message text ("lat,lon").
    """

    kind: MediaKind
    file_id: str | None = None
    group_id: str | None = None


@dataclass(frozen=True, slots=True)
class Received:
    """Where a shopper's message went: the conversation, the message, and whether it opened
    the conversation (the shopper is acknowledged once per conversation)."""

    ticket: Ticket
    message: TicketMessage
    opened: bool


class TicketError(Exception):
    """A ticket operation that cannot be done; ``reason`` says why.

    ``"not_found"``, ``"closed"``, ``"member_gone"`` (the shopper deleted their data),
    ``"empty"``, ``"too_long"`` or ``"open"`` (reopening a conversation that is not closed).
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


def message_media(message: TicketMessage) -> Media | None:
    """The attachment a stored message carries, if any."""
    if message.media_kind is None:
        return None
    return Media(MediaKind(message.media_kind), message.file_id, message.media_group_id)


def check_message(
    text: str | None, media: Media | None = None, *, limit: int = MAX_TEXT_CHARS
) -> str | None:
    """The text a ticket message would store (trimmed, or None with an attachment alone).

    Raises ``TicketError`` ("empty" for neither text nor attachment, "too_long" over
    ``limit``).
    """
    text = (text or "").strip() or None
    if text is None and media is None:
        raise TicketError("empty")
    if text is not None and len(text) > limit:
        raise TicketError("too_long")
    return text


def _message(
    author: MessageAuthor, text: str | None, media: Media | None, now: datetime, **extra: Any
) -> TicketMessage:
    return TicketMessage(
        author=author,
        text=text,
        media_kind=media.kind.value if media is not None else None,
        file_id=media.file_id if media is not None else None,
        media_group_id=media.group_id if media is not None else None,
        created_at=now,
        **extra,
    )


async def open_ticket(
    session: AsyncSession,
    clock: Clock,
    *,
    member: Member,
    kind: TicketKind,
    text: str | None,
    media: Media | None = None,
) -> Ticket:
    """Open a ticket with the shopper's first message (text, an attachment, or both).

    The returned ticket has its thread loaded. Raises ``TicketError`` ("empty", "too_long").
    """
    text = check_message(text, media)
    now = clock.now()
    first = _message(MessageAuthor.MEMBER, text, media, now)
    return await TicketRepo(session).add(
        Ticket(
            member_id=member.id,
            kind=kind,
            status=TicketStatus.OPEN,
            created_at=now,
            updated_at=now,
            waiting_since=now,
            messages=[first],
        )
    )


async def add_member_message(
    session: AsyncSession,
    clock: Clock,
    *,
    ticket: Ticket,
    text: str | None,
    media: Media | None = None,
) -> TicketMessage:
    """Append the shopper's message to their ticket; an answered ticket waits for staff again."""
    if ticket.status == TicketStatus.CLOSED:
        raise TicketError("closed")
    text = check_message(text, media)
    now = clock.now()
    message = await TicketRepo(session).add_message(
        _message(MessageAuthor.MEMBER, text, media, now, ticket_id=ticket.id)
    )
    if ticket.status != TicketStatus.OPEN or ticket.waiting_since is None:
        ticket.waiting_since = now
    ticket.status = TicketStatus.OPEN
    ticket.updated_at = now
    await session.flush()
    return message


async def receive_member_message(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    *,
    member: Member,
    text: str | None,
    media: Media | None = None,
) -> Received:
    """Whatever a shopper writes outside a flow: it joins their open conversation, or opens a
    new "message" conversation; staff are alerted (once per album).

    Raises ``TicketError`` ("empty", "too_long") and then changes nothing.
    """
    check_message(text, media)
    ticket = await current_ticket(session, member)
    if ticket is None:
        ticket = await open_ticket(
            session, clock, member=member, kind=TicketKind.MESSAGE, text=text, media=media
        )
        message, opened = ticket.messages[0], True
    else:
        message = await add_member_message(session, clock, ticket=ticket, text=text, media=media)
        opened = False
    await notify_staff(session, clock, config, ticket=ticket, message=message, member=member)
    return Received(ticket, message, opened)


async def notify_staff(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    *,
    ticket: Ticket,
    message: TicketMessage,
    member: Member,
) -> int:
    """Tell staff that a shopper opened a ticket or wrote into one. Returns alerts queued.

    The photos of one album arrive one by one: only the first of them raises an alert.
    """
    repo = TicketRepo(session)
    if message.media_group_id and await repo.album_seen_before(
        ticket.id, message.media_group_id, message.id
    ):
        return 0
    first = message.id == await repo.first_message_id(ticket.id)
    excerpt = (message.text or "")[:ALERT_EXCERPT_CHARS]
    if ticket.kind == TicketKind.MESSAGE:
        text_key = f"conversation.alert.{'new' if first else 'more'}"
    else:
        text_key = f"feedback.alert.{'new' if first else 'more'}_{ticket.kind}"
    return await alert_staff(
        session,
        clock,
        config,
        key=f"ticket:{ticket.id}:msg:{message.id}",
        text_key=text_key,
        number=ticket.id,
        about_member_id=member.id,
        name=member.name or member.member_code,
        code=member.member_code,
        # The words, then the media's icon: "receipt 📷", "📷" alone, or the words alone.
        text=" ".join(filter(None, (excerpt, MEDIA_ICONS.get(message.media_kind or "")))),
    )


async def current_ticket(session: AsyncSession, member: Member) -> Ticket | None:
    """The member's newest ticket that is not closed yet."""
    return await TicketRepo(session).latest_unclosed_for_member(member.id)


async def member_ticket(session: AsyncSession, member: Member, ticket_id: int) -> Ticket | None:
    """The ticket if it belongs to ``member`` (whatever its status), else None."""
    ticket = await TicketRepo(session).get(ticket_id)
    return ticket if ticket is not None and ticket.member_id == member.id else None


async def write_back_ticket(
    session: AsyncSession, member: Member, ticket_id: int
) -> Ticket | None:
    """Where the shopper's "write back" on ``ticket_id`` goes: the ticket while it is open; once
    closed, the conversation they have open, else the ticket itself, reopened for their message
    (it waits for the shop again). None if the ticket is not theirs."""
    ticket = await member_ticket(session, member, ticket_id)
    if ticket is None or ticket.status != TicketStatus.CLOSED:
        return ticket
    if (current := await current_ticket(session, member)) is not None:
        return current
    ticket.status, ticket.closed_at, ticket.closed_by = TicketStatus.ANSWERED, None, None
    return ticket


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
    text: str | None,
    media: Media | None = None,
) -> Ticket:
    """Record a staff answer (text, an attachment, or both) and send it to the shopper.

    Raises ``TicketError`` ("not_found", "closed", "member_gone", "empty", "too_long") and then
    changes nothing. An answer is a service message the shopper is waiting for: it ignores
    quiet hours. Feedback tickets keep a "write back" button; a conversation needs none — the
    shopper simply writes.
    """
    repo = TicketRepo(session)
    ticket = await repo.get(ticket_id)
    if ticket is None:
        raise TicketError("not_found")
    member = await _reachable_member(session, ticket)
    if ticket.status == TicketStatus.CLOSED:
        raise TicketError("closed")
    if media is not None and media.kind == MediaKind.LOCATION:
        raise TicketError("unsupported")
    limit = MAX_CAPTION_CHARS if media is not None else MAX_TEXT_CHARS
    body = check_message(text, media, limit=limit)
    if media is not None and media.kind in CAPTIONLESS and body is not None:
        raise TicketError("no_caption")
    now = clock.now()
    message = await repo.add_message(
        _message(
            MessageAuthor.STAFF,
            body,
            media,
            now,
            ticket_id=ticket.id,
            staff_telegram_id=staff_telegram_id,
        )
    )
    ticket.status = TicketStatus.ANSWERED
    ticket.waiting_since = None
    ticket.updated_at = now
    if ticket.assigned_to is None:
        ticket.assigned_to = staff_telegram_id
    t = translator(member.locale)
    assert member.chat_id is not None  # checked by _reachable_member
    if ticket.kind == TicketKind.MESSAGE:
        wrapped = t("conversation.reply.to_member", shop=config.shop_name, text=body or "")
        markup = None
    else:
        wrapped = t("feedback.reply.to_member", number=ticket.id, text=body or "")
        markup = _button(t.plain("feedback.reply.write_back"), write_back_data(ticket.id))
    if media is not None and media.kind in CAPTIONLESS:
        wrapped = ""
    # A photo or file sent without a caption: the shop's name alone, not followed by blank lines.
    wrapped = wrapped.rstrip()
    await enqueue(
        session,
        clock,
        config,
        key=f"ticket:{ticket.id}:reply:{message.id}",
        chat_id=member.chat_id,
        text=wrapped,
        kind=MessageKind.SERVICE,
        member=member,
        photo=media.file_id if media is not None else None,
        media_kind=media.kind.value if media is not None else None,
        reply_markup=markup,
        respect_quiet_hours=False,
    )
    await session.flush()
    return ticket


async def assign_ticket(
    session: AsyncSession, *, ticket_id: int, staff_telegram_id: int | None
) -> tuple[Ticket, int | None]:
    """Give the conversation to a staff member (None: to nobody); returns it and who had it.

    Raises ``TicketError("not_found")``.
    """
    ticket = await TicketRepo(session).get(ticket_id)
    if ticket is None:
        raise TicketError("not_found")
    previous = ticket.assigned_to
    ticket.assigned_to = staff_telegram_id
    await session.flush()
    return ticket, previous


async def reopen_ticket(
    session: AsyncSession, clock: Clock, *, ticket_id: int, staff_telegram_id: int
) -> Ticket:
    """Reopen a closed conversation so staff can write into it again; assigned to the opener.

    Raises ``TicketError``: "not_found"; "open" when it is not closed; "member_gone" for an
    erased member; "other_open" when the shopper already has another open conversation (their
    messages go there, so that one is the one to answer).
    """
    repo = TicketRepo(session)
    ticket = await repo.get(ticket_id)
    if ticket is None:
        raise TicketError("not_found")
    if ticket.status != TicketStatus.CLOSED:
        raise TicketError("open")
    await _reachable_member(session, ticket)
    other = await repo.latest_unclosed_for_member(ticket.member_id)
    if other is not None:
        raise TicketError("other_open")
    ticket.status = TicketStatus.ANSWERED
    ticket.closed_at = None
    ticket.closed_by = None
    ticket.waiting_since = None
    ticket.assigned_to = staff_telegram_id
    ticket.updated_at = clock.now()
    await session.flush()
    return ticket


async def member_reachable(session: AsyncSession, ticket: Ticket) -> bool:
    """Whether an answer could reach the shopper (False once they erased their data)."""
    try:
        await _reachable_member(session, ticket)
    except TicketError:
        return False
    return True


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
        or await SurveyRepo(session).ticket_invited(ticket.id)  # reopened, closed again
    ):
        return ticket
    invitation = await create_invitation(
        session, clock, member_id=member.id, kind=SurveyKind.TICKET, ticket_id=ticket.id
    )
    text = invitation_text(invitation, member.locale)
    if ticket.kind == TicketKind.MESSAGE:
        text = translator(member.locale)("survey.ticket.question_message")
    await enqueue(
        session,
        clock,
        config,
        key=f"ticket:{ticket.id}:rating",
        chat_id=member.chat_id,
        text=text,
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
