"""``purchase``: due ``delay`` after each purchase (one occasion per purchase)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, String, cast, literal, select

from care.automation.rules import Trigger
from care.automation.triggers.base import BaseTrigger, Candidate
from care.core.quiet_hours import member_zone
from storage.models import Member, Purchase


class Purchased(BaseTrigger[int, datetime]):
    trigger = Trigger.PURCHASE

    def query(self) -> Select[int, int, datetime]:
        occasion = literal("purchase:") + cast(Purchase.id, String)
        return (
            select(Member.id, Purchase.id, Purchase.purchased_at)
            .join(Purchase, Purchase.member_id == Member.id)
            .where(
                *self.due_range(Purchase.purchased_at),
                Purchase.voided_at.is_(None),  # no survey about a purchase the till undid
                ~self.touched_occasion(occasion),
                *self.repeat_guard(),
            )
        )

    def candidate(self, member: Member, row: Row[int, int, datetime]) -> Candidate | None:
        _, purchase_id, purchased_at = row
        return Candidate(
            member, f"purchase:{purchase_id}", purchased_at + self.rule.delay,
            {"purchase_id": purchase_id, "purchased_at": purchased_at},
        )  # fmt: skip

    def message_facts(self, facts: dict[str, Any], member: Member, locale: str, tz: str) -> None:
        purchased_at: datetime = facts["purchased_at"]
        facts["purchase_day"] = purchased_at.astimezone(member_zone(tz)).date().isoformat()
