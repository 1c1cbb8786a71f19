"""``referral``: an invited friend's first purchase rewards the member who invited them.

The friend is marked rewarded (``referral_rewarded_at``) whichever arm the referrer is in.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, Select, select, update
from sqlalchemy.orm import aliased

from care.automation.rules import Trigger
from care.automation.triggers.base import BaseTrigger, Candidate
from care.core.i18n import translator
from care.members.referrals import first_name
from storage.models import Member


class Referral(BaseTrigger[int, str, str | None]):
    trigger = Trigger.REFERRAL
    marked = True

    def query(self) -> Select[int, int, str, str | None]:
        friend = aliased(Member, name="friend")
        return (
            select(Member.id, friend.id, friend.member_code, friend.name)
            .join(friend, friend.referrer_id == Member.id)
            .where(
                *self.due_range(friend.first_purchase_at),
                friend.referral_rewarded_at.is_(None),
            )
        )

    def candidate(self, member: Member, row: Row[int, int, str, str | None]) -> Candidate | None:
        _, friend_id, friend_code, friend_name = row
        return Candidate(
            member, f"friend:{friend_id}", self.now,
            {"friend_id": friend_id, "friend_code": friend_code, "friend_name": friend_name},
        )  # fmt: skip

    async def mark(self, decided: list[Candidate]) -> None:
        await self.session.execute(
            update(Member)
            .where(Member.id.in_([c.facts["friend_id"] for c in decided]))
            .values(referral_rewarded_at=self.now)
            .execution_options(synchronize_session=False)
        )

    def message_facts(self, facts: dict[str, Any], member: Member, locale: str, tz: str) -> None:
        # The reward itself comes from the rule's offer; without one the message still reads.
        facts.setdefault("reward_points", 0)
        facts.setdefault("coupon", None)
        # The inviter knows the friend by name, never by member code.
        facts["friend"] = first_name(facts.pop("friend_name", None), translator(locale))
        facts.pop("friend_code", None)
