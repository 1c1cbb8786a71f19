"""``at_risk`` and ``lapsed``: when the member started drifting away.

``lapsed`` is the gap rule's lifecycle stage. ``at_risk`` (the win-back rule) follows the shop's
churn signal (``care.value.signal``, chosen from the shop's own backtest): with the gap rule
(also before any choice),
the moment the lifecycle stage became at risk; with a model signal, the moment the value refresh
found the member at risk by it (``member_value.at_risk_since``). Either moment is stamped only
for a real change, never for a first classification, so an import sends no burst.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from sqlalchemy import Row, Select, select

from care.automation.rules import Trigger
from care.automation.triggers.base import BaseTrigger, Candidate, iso
from care.value.signal import GAP_RULE, current_signal
from storage.enums import LifecycleStage
from storage.models import Member, MemberValue


class _StageReached(BaseTrigger[datetime | None]):
    stage: ClassVar[LifecycleStage]
    # The segment (or value) refresh stamps its start time and commits up to a minute later on a
    # big shop: a pass in between must not close the window on those stamps. Every pass looks
    # back the rule's whole allowance; "touched since the stamp" is the done mark.
    marked = True

    def query(self) -> Select[int, datetime | None]:
        changed = Member.stage_changed_at
        return select(Member.id, changed).where(
            Member.lifecycle_stage == self.stage,
            *self.due_range(changed),
            ~self.touched_since(changed),
        )

    def candidate(self, member: Member, row: Row[int, datetime | None]) -> Candidate | None:
        assert member.stage_changed_at is not None
        changed = member.stage_changed_at
        return Candidate(member, f"{member.lifecycle_stage}:{iso(changed)}", changed)


class AtRisk(_StageReached):
    trigger = Trigger.AT_RISK
    stage = LifecycleStage.AT_RISK
    signal: str = GAP_RULE

    async def prepare(self) -> None:
        self.signal = await current_signal(self.session)

    def query(self) -> Select[int, datetime | None]:
        if self.signal == GAP_RULE:
            return super().query()
        since = MemberValue.at_risk_since
        return (
            select(Member.id, since)
            .join(MemberValue, MemberValue.member_id == Member.id)
            .where(
                MemberValue.at_risk.is_(True),
                *self.due_range(since),
                ~self.touched_since(since),
            )
        )

    def candidate(self, member: Member, row: Row[int, datetime | None]) -> Candidate | None:
        if self.signal == GAP_RULE:
            return super().candidate(member, row)
        since = row[1]
        if since is None:
            return None
        return Candidate(member, f"{self.signal}:{iso(since)}", since)


class Lapsed(_StageReached):
    trigger = Trigger.LAPSED
    stage = LifecycleStage.LAPSED
