"""``complaint_closed``: ``delay`` after a complaint ticket was closed (one occasion a ticket)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, Select, String, cast, literal, select

from care.automation.rules import Trigger
from care.automation.triggers.base import BaseTrigger, Candidate
from storage.enums import TicketKind, TicketStatus
from storage.models import Member, Ticket


class ComplaintClosed(BaseTrigger[int, datetime | None]):
    trigger = Trigger.COMPLAINT_CLOSED

    def query(self) -> Select[int, int, datetime | None]:
        occasion = literal("ticket:") + cast(Ticket.id, String)
        return (
            select(Member.id, Ticket.id, Ticket.closed_at)
            .join(Ticket, Ticket.member_id == Member.id)
            .where(
                Ticket.kind == TicketKind.COMPLAINT,
                Ticket.status == TicketStatus.CLOSED,
                *self.due_range(Ticket.closed_at),
                ~self.touched_occasion(occasion),
            )
        )

    def candidate(self, member: Member, row: Row[int, int, datetime | None]) -> Candidate | None:
        _, ticket_id, closed_at = row
        assert closed_at is not None  # the query asks for closed tickets
        return Candidate(
            member, f"ticket:{ticket_id}", closed_at + self.rule.delay, {"ticket_id": ticket_id}
        )
