"""``joined``: due ``delay`` after registering; once per rule and member."""

from __future__ import annotations

from sqlalchemy import Row, Select, exists, select

from care.automation.rules import Trigger
from care.automation.triggers.base import BaseTrigger, Candidate
from storage.models import CareTouch, Member


class Joined(BaseTrigger[()]):
    trigger = Trigger.JOINED

    def query(self) -> Select[int]:
        return select(Member.id).where(
            *self.due_range(Member.registered_at),
            ~exists().where(CareTouch.rule == self.rule.name, CareTouch.member_id == Member.id),
        )

    def candidate(self, member: Member, row: Row[int]) -> Candidate | None:
        assert member.registered_at is not None
        return Candidate(member, "joined", member.registered_at + self.rule.delay)
