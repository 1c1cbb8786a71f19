"""Following up a low score by writing to the member: the score's alert leads to a conversation.

A low score (CSAT or a ticket rating of 2/5 or less, NPS 6/10 or less) alerts staff at once
(``care.conversations.surveys``); the alert's button opens the member's conversation so staff can
write to them right there. The conversation the member already has open is continued; a rated
ticket that was closed is reopened; otherwise a new conversation starts, waiting for the shop
(nobody has written in it yet). Either way it remembers the score (``Ticket.followup_of``): the
thread says what it follows up, and the first staff answer in it marks the score followed up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from care.conversations.tickets import TicketError, reopen_ticket
from care.core.audit import audit
from care.core.clock import Clock
from storage.enums import MemberStatus, SurveyKind, TicketKind, TicketStatus
from storage.models import Member, SurveyResponse, Ticket
from storage.repos.members import MemberRepo
from storage.repos.surveys import SurveyRepo
from storage.repos.tickets import TicketRepo

How = Literal["continued", "reopened", "opened"]


@dataclass(frozen=True, slots=True)
class FollowUp:
    ticket: Ticket
    member: Member
    response: SurveyResponse
    how: How


async def followup_response(session: AsyncSession, response_id: int) -> SurveyResponse | None:
    """The survey response a conversation follows up."""
    return await SurveyRepo(session).response(response_id)


async def open_followup(
    session: AsyncSession,
    clock: Clock,
    *,
    response_id: int,
    staff_telegram_id: int,
    staff_role: str,
) -> FollowUp:
    """The member's conversation for following up a low score, opened or continued, assigned
    to this staff member when nobody has it; audited (``survey.followup``).

    Raises ``TicketError``: "not_found" (no such response), "member_gone" (the member erased
    their data, or never had a chat with the bot) — with nothing changed.
    """
    response = await SurveyRepo(session).response(response_id)
    if response is None:
        raise TicketError("not_found")
    member = await MemberRepo(session).get(response.member_id)
    if member is None or member.status == MemberStatus.DELETED or member.chat_id is None:
        raise TicketError("member_gone")
    repo = TicketRepo(session)
    now = clock.now()
    how: How = "continued"
    ticket = await repo.latest_unclosed_for_member(member.id)
    rated = await _rated_ticket(session, response)
    if ticket is None and rated is not None and rated.status == TicketStatus.CLOSED:
        ticket = await reopen_ticket(
            session, clock, ticket_id=rated.id, staff_telegram_id=staff_telegram_id
        )
        how = "reopened"
    if ticket is None:
        ticket = await repo.add(
            Ticket(
                member_id=member.id,
                kind=TicketKind.MESSAGE,
                status=TicketStatus.OPEN,
                created_at=now,
                updated_at=now,
                # The shop owes this member a word until someone writes.
                waiting_since=now,
                assigned_to=staff_telegram_id,
                messages=[],
            )
        )
        how = "opened"
    if ticket.followup_of is None:
        ticket.followup_of = response.id
    if ticket.assigned_to is None:
        ticket.assigned_to = staff_telegram_id
    ticket.updated_at = now
    await session.flush()
    await audit(
        session,
        clock,
        actor_telegram_id=staff_telegram_id,
        actor_role=staff_role,
        action="survey.followup",
        target=f"member:{member.id}",
        details={
            "ticket_id": ticket.id,
            "response_id": response.id,
            "kind": response.kind,
            "score": response.score,
            "how": how,
        },
    )
    return FollowUp(ticket, member, response, how)


async def _rated_ticket(session: AsyncSession, response: SurveyResponse) -> Ticket | None:
    """The ticket a ticket rating was about (None for CSAT and NPS)."""
    if response.kind != SurveyKind.TICKET:
        return None
    invitation = await SurveyRepo(session).invitation(response.invitation_id)
    if invitation is None or invitation.ticket_id is None:
        return None
    return await TicketRepo(session).get(invitation.ticket_id)
