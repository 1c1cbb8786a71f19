"""The care engine: for each rule, who is due now, and what they get.

One pass over a rule:

1. **Find** the members whose occasion fell due in the rule's window — from the end of its last
   completed pass (``job_state``) up to now, never further back than the rule's ``max_late`` —
   and that the rule has not touched for that occasion. The rule's trigger
   (``care.automation.triggers``) asks one set-based query over an indexed column and returns
   just ids and facts. After downtime the next pass covers the whole gap once; a second pass
   finds nothing new.
2. **Guard** (per batch of loaded members): marketing needs consent and reachability (already
   in the query), no unresolved complaint or low score, and room under the frequency cap
   (``care.messaging.guardrails``). A blocked member is not decided and the occasion is not
   replayed.
3. **Claim** each (rule, member, occasion) by inserting a touch (``care.automation.touches``)
   and split the arm: a deterministic ``config.holdout_pct`` of members is held out of holdout
   rules.
4. **Act** for the treatment arm (``care.automation.actions``): the rule's coupons or points,
   its survey invitations, the template rendered in each member's language, queued through the
   outbox (quiet hours are applied there). The held-out arm gets the touch and nothing else.

Each batch is its own short transaction when ``commit`` is on (the scheduler), retried when
the database is busy (``care.core.retry``); a dry run keeps everything in one transaction and
rolls back.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import raiseload

from care.automation.actions import Actor
from care.automation.rules import Audience, Rule, scheduled_rules
from care.automation.touches import claim, link_outbox, touch_key
from care.automation.triggers import Candidate, TriggerPass, trigger_pass
from care.core import jobs
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.retry import CONTENTION, ONCE
from care.messaging.guardrails import marketing_blocks
from care.messaging.outbox import enqueue_many
from storage.enums import HoldoutArm, LifecycleStage, MemberStatus
from storage.models import Member

log = logging.getLogger(__name__)

BATCH_SIZE = 500
# A due row: the member id, then the trigger's own facts.
DueRow = Row[int, *tuple[Any, ...]]

# The NPS audience; checked on the loaded rows, so that SQLite walks the registered_at ranges
# instead of every active member.
_ACTIVE_STAGES = frozenset({LifecycleStage.ACTIVE, LifecycleStage.WON_BACK})


@dataclass(frozen=True, slots=True)
class Decision:
    """What the engine decided for one member: for the dry run and the logs."""

    rule: str
    member_id: int
    member_code: str
    name: str | None
    locale: str
    occasion: str
    arm: str
    text: str | None = None
    not_before: datetime | None = None


@dataclass(slots=True)
class RuleOutcome:
    """What one pass of one rule did."""

    rule: str
    due: int = 0
    sent: int = 0
    held_out: int = 0
    already_decided: int = 0
    blocked: Counter[str] = field(default_factory=Counter)
    decisions: list[Decision] = field(default_factory=list)
    error: str | None = None

    @property
    def decided(self) -> int:
        return self.sent + self.held_out


def coverage_name(rule: Rule) -> str:
    """The ``job_state`` row that remembers up to when ``rule`` has been evaluated."""
    return f"care.rule.{rule.name}"


def _reachable(rule: Rule) -> list[ColumnElement[bool]]:
    """Who the rule may write to at all, added to every trigger's query."""
    # Not ``status``: nearly every member is active, and SQLite would walk that index instead
    # of the trigger's; the status is checked on the loaded rows (``_eligible``).
    conditions: list[ColumnElement[bool]] = [
        Member.deleted_at.is_(None),
        Member.blocked_at.is_(None),
        Member.chat_id.is_not(None),
    ]
    if rule.is_marketing:
        conditions.append(Member.marketing_opt_in.is_(True))
    if rule.survey is not None:
        conditions.append(Member.surveys_opt_in.is_(True))
    return conditions


def _eligible(rule: Rule, member: Member) -> bool:
    if member.status != MemberStatus.ACTIVE:
        return False
    return (
        rule.audience != Audience.ACTIVE_SURVEY_TAKERS or member.lifecycle_stage in _ACTIVE_STAGES
    )


async def evaluate_rule(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    rule: Rule,
    *,
    since: datetime | None = None,
    commit: bool = True,
    collect: bool = False,
    batch_size: int = BATCH_SIZE,
) -> RuleOutcome:
    """Decide every member due for ``rule`` now; queue the treatment arm's messages.

    With ``commit`` each batch commits on its own (the scheduler's mode, with a retry when the
    database is busy); without it nothing is committed and the caller decides (the dry run rolls
    back). ``collect`` keeps a ``Decision`` per member, with the text, for printing.
    """
    now = clock.now()
    trigger = trigger_pass(session, config, rule, now, since)
    run = _RulePass(session, config, clock, rule, now, trigger, collect)
    await run.load()
    if not run.actor.offer_usable():
        run.outcome.error = f"offer {rule.offer!r} is switched off or over"
        log.warning("care rule %s skipped: %s", rule.name, run.outcome.error)
        return run.outcome
    # Phase one finds who is due: ids and trigger facts only, through the trigger's index.
    # Phase two loads and decides them in batches, each its own short transaction.
    due = (await session.execute(trigger.query().where(*_reachable(rule)))).all()
    if commit:
        await session.commit()
    policy = CONTENTION if commit else ONCE
    for start in range(0, len(due), batch_size):
        rows = due[start : start + batch_size]

        async def decide(rows: Sequence[DueRow] = rows) -> None:
            try:
                await run.decide(rows)
                if commit:
                    await session.commit()
            except Exception:
                await session.rollback()
                raise

        await policy.run(decide, before_retry=run.load)
        session.expunge_all()
    if commit:
        await jobs.mark_covered(session, coverage_name(rule), now)
    return run.outcome


@dataclass
class _RulePass:
    """One pass of one rule at ``now``: its trigger, its actor, and what it decided so far."""

    session: AsyncSession
    config: CareConfig
    clock: Clock
    rule: Rule
    now: datetime
    trigger: TriggerPass[*tuple[Any, ...]]
    collect: bool
    actor: Actor = field(init=False)
    outcome: RuleOutcome = field(init=False)

    def __post_init__(self) -> None:
        self.actor = Actor(self.session, self.config, self.clock, self.rule, self.trigger)
        self.outcome = RuleOutcome(self.rule.name)

    async def load(self) -> None:
        """What the pass reads before deciding (again after a rollback expired it)."""
        await self.trigger.prepare()
        await self.actor.prepare()

    async def decide(self, rows: Sequence[DueRow]) -> None:
        """One batch of due rows: load the members, guard, claim, act."""
        rule, outcome = self.rule, self.outcome
        batch = await self._candidates(rows)
        outcome.due += len(batch)
        if rule.is_marketing and batch:
            blocks = await marketing_blocks(
                self.session, self.config, self.clock, [c.member for c in batch]
            )
            outcome.blocked.update(blocks.values())
            batch = [c for c in batch if c.member.id not in blocks]
        won = await claim(self.session, rule, self.config, self.now, batch)
        outcome.already_decided += len(batch) - len(won)
        decided = [c for c in batch if (c.member.id, c.occasion) in won]
        arms = {id(c): won[(c.member.id, c.occasion)][1] for c in decided}
        treated = [c for c in decided if arms[id(c)] != HoldoutArm.HOLDOUT]
        outcome.held_out += len(decided) - len(treated)
        if self.collect:
            outcome.decisions.extend(
                _decision(rule, c, HoldoutArm.HOLDOUT)
                for c in decided
                if arms[id(c)] == HoldoutArm.HOLDOUT
            )
        if decided:
            await self.trigger.mark(decided)
        if not treated:
            return
        await self.actor.load_facts(treated)
        items = [await self.actor.act(c) for c in treated]
        await enqueue_many(self.session, self.clock, self.config, items)
        queued = await link_outbox(self.session, won, treated, items)
        outcome.sent += len(treated)
        if self.collect:
            for c, item in zip(treated, items, strict=True):
                outcome.decisions.append(
                    _decision(rule, c, HoldoutArm.TREATMENT, item.text, queued.get(item.key))
                )

    async def _candidates(self, rows: Sequence[DueRow]) -> list[Candidate]:
        members = {
            member.id: member
            for member in await self.session.scalars(
                select(Member)
                .where(Member.id.in_({row[0] for row in rows}))
                .options(raiseload(Member.interests))
            )
        }
        batch: list[Candidate] = []
        seen: set[int] = set()
        for row in rows:
            member = members.get(row[0])
            # One occasion per member per pass: two purchases in the window get one survey.
            if member is None or member.id in seen or not _eligible(self.rule, member):
                continue
            candidate = self.trigger.candidate(member, row)
            if candidate is not None:
                seen.add(member.id)
                batch.append(candidate)
        return await self.trigger.keep(batch) if batch else batch


def _decision(
    rule: Rule,
    c: Candidate,
    arm: str,
    text: str | None = None,
    not_before: datetime | None = None,
) -> Decision:
    return Decision(
        rule=rule.name, member_id=c.member.id, member_code=c.member.member_code,
        name=c.member.name, locale=c.member.locale, occasion=c.occasion, arm=str(arm),
        text=text, not_before=not_before,
    )  # fmt: skip


async def evaluate(
    session_factory: async_sessionmaker[AsyncSession],
    config: CareConfig,
    clock: Clock,
    *,
    only: str | None = None,
) -> list[RuleOutcome]:
    """One evaluation pass over every enabled scheduled rule (or just ``only``), committing.

    Each rule covers the occasions due since its last completed pass (``job_state``), at most
    ``max_late`` back: after downtime the next pass catches up once. A rule that fails is
    logged and reported in its outcome, keeps its window for the next pass, and the other
    rules still run.
    """
    outcomes = []
    for rule in scheduled_rules(config, only):
        async with session_factory() as session:
            try:
                since = await jobs.covered_until(session, coverage_name(rule))
                outcome = await evaluate_rule(session, config, clock, rule, since=since)
            except Exception as exc:  # one broken rule must not stop the others
                log.exception("care rule %s failed", rule.name)
                await session.rollback()
                outcome = RuleOutcome(rule.name, error=f"{type(exc).__name__}: {exc}")
        outcomes.append(outcome)
        if outcome.decided:
            log.info(
                "care rule %s: %d sent, %d held out, blocked %s",
                rule.name, outcome.sent, outcome.held_out, dict(outcome.blocked),
            )  # fmt: skip
    return outcomes


async def plan(
    session_factory: async_sessionmaker[AsyncSession],
    config: CareConfig,
    clock: Clock,
    *,
    only: str | None = None,
) -> list[RuleOutcome]:
    """The dry run: what a pass at ``clock.now()`` would decide, with every text; nothing kept.

    The pass runs for real inside one transaction that is rolled back, so coupons, survey
    invitations, touches and outbox rows it would create are never committed.
    """
    outcomes = []
    async with session_factory() as session:
        try:
            for rule in scheduled_rules(config, only):
                since = await jobs.covered_until(session, coverage_name(rule))
                outcomes.append(
                    await evaluate_rule(
                        session, config, clock, rule, since=since, commit=False, collect=True
                    )
                )
        finally:
            await session.rollback()
    return outcomes


__all__ = [
    "Candidate",
    "Decision",
    "RuleOutcome",
    "coverage_name",
    "evaluate",
    "evaluate_rule",
    "plan",
    "touch_key",
]
