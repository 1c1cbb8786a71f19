"""What every trigger implements (``TriggerPass``), and the pieces their queries share.

A trigger pass is made for one rule at one moment ``now`` and covers the occasions that fell due
in its window, ``(window_start, now]``. It owns everything that is particular to its trigger:

* ``prepare`` loads what the query and the candidates need (the tiers, the oldest membership);
* ``query`` finds the due members with one set-based statement: rows of (member id, *facts);
* ``candidate`` turns a loaded member and its row into the occasion and its facts, or refuses;
* ``keep`` takes a second look at a batch where that needs another table (one query a batch);
* ``mark`` records the occasion as done whichever arm the member is in (a coupon reminded of);
* ``load_facts`` and ``message_facts`` add what the treatment arm's message says.

The engine (``care.automation.engine``) does the rest, the same for every trigger: reachability,
guardrails, claiming, holdout, offers and surveys, rendering and queueing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVarTuple

from sqlalchemy import ColumnElement, Row, Select, exists
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from care.automation.rules import Rule, Trigger
from care.core.config import CareConfig
from storage.models import CareTouch, Member

Ts = TypeVarTuple("Ts")


@dataclass(slots=True)
class Candidate:
    """A member due for a rule on one occasion, with the facts its message needs."""

    member: Member
    occasion: str
    due_at: datetime
    facts: dict[str, Any] = field(default_factory=dict)


class TriggerPass(Protocol[*Ts]):
    """One trigger's part of a rule pass; see the module docstring for each step."""

    async def prepare(self) -> None: ...

    def query(self) -> Select[int, *Ts]: ...

    def candidate(self, member: Member, row: Row[int, *Ts]) -> Candidate | None: ...

    async def keep(self, batch: list[Candidate]) -> list[Candidate]: ...

    async def mark(self, decided: list[Candidate]) -> None: ...

    async def load_facts(self, treated: list[Candidate]) -> None: ...

    def message_facts(
        self, facts: dict[str, Any], member: Member, locale: str, tz: str
    ) -> None: ...


class BaseTrigger(ABC, Generic[*Ts]):
    """Shared window arithmetic and the steps most triggers leave as they are."""

    trigger: ClassVar[Trigger]
    # Occasions that carry their own "done" mark, whose trigger time may be set in the past (a
    # purchase entered late): such a pass looks back the rule's whole allowance every time.
    marked: ClassVar[bool] = False

    def __init__(
        self,
        session: AsyncSession,
        config: CareConfig,
        rule: Rule,
        now: datetime,
        since: datetime | None = None,
    ) -> None:
        # Occasions due in (start, now]: since the last pass, and never staler than the rule
        # allows (a birthday greeting two days late is worse than none).
        oldest = now - rule.max_late
        self.start = oldest if since is None or self.marked else min(max(oldest, since), now)
        self.session = session
        self.config = config
        self.rule = rule
        self.now = now

    async def prepare(self) -> None:
        return None

    @abstractmethod
    def query(self) -> Select[int, *Ts]: ...

    @abstractmethod
    def candidate(self, member: Member, row: Row[int, *Ts]) -> Candidate | None: ...

    async def keep(self, batch: list[Candidate]) -> list[Candidate]:
        return batch

    async def mark(self, decided: list[Candidate]) -> None:
        return None

    async def load_facts(self, treated: list[Candidate]) -> None:
        return None

    def message_facts(self, facts: dict[str, Any], member: Member, locale: str, tz: str) -> None:
        return None

    # ------------------------------------------------------------------ query pieces
    def due_range(self, column: QueryableAttribute[datetime | None]) -> list[ColumnElement[bool]]:
        """``column + rule.delay`` falls in the window."""
        delay = self.rule.delay
        return [column > self.start - delay, column <= self.now - delay]

    def repeat_guard(self) -> list[ColumnElement[bool]]:
        """Not touched by this rule within its ``repeat_after``."""
        if self.rule.repeat_after is None:
            return []
        return [~self.touched_since(self.now - self.rule.repeat_after)]

    def touched_since(
        self, since: QueryableAttribute[datetime | None] | datetime
    ) -> ColumnElement[bool]:
        """This rule touched the member at or after ``since``."""
        return exists().where(
            CareTouch.rule == self.rule.name,
            CareTouch.member_id == Member.id,
            CareTouch.decided_at >= since,
        )

    def touched_occasion(self, occasion: ColumnElement[str]) -> ColumnElement[bool]:
        """This rule already decided ``occasion`` for the member."""
        return exists().where(
            CareTouch.rule == self.rule.name,
            CareTouch.member_id == Member.id,
            CareTouch.occasion == occasion,
        )


def iso(value: datetime) -> str:
    """A compact UTC timestamp for occasion names."""
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
