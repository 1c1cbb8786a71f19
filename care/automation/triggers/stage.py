"""``at_risk`` and ``lapsed``: when the member's lifecycle stage became that stage."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy import Row, Select, select

from care.automation.rules import Trigger
from care.automation.triggers.base import BaseTrigger, Candidate, iso
from storage.enums import LifecycleStage
from storage.models import Member


class _StageReached(BaseTrigger[()]):
    stage: ClassVar[LifecycleStage]

    def query(self) -> Select[int]:
        return select(Member.id).where(
            Member.lifecycle_stage == self.stage,
            *self.due_range(Member.stage_changed_at),
            ~self.touched_since(Member.stage_changed_at),
        )

    def candidate(self, member: Member, row: Row[int]) -> Candidate | None:
        assert member.stage_changed_at is not None
        changed = member.stage_changed_at
        return Candidate(member, f"{member.lifecycle_stage}:{iso(changed)}", changed)


class AtRisk(_StageReached):
    trigger = Trigger.AT_RISK
    stage = LifecycleStage.AT_RISK


class Lapsed(_StageReached):
    trigger = Trigger.LAPSED
    stage = LifecycleStage.LAPSED
