"""Care touches: the one row per (rule, member, occasion) that says it was decided.

Claiming inserts the touches with the unique index as the judge, so overlapping passes and
replicas never decide the same occasion twice; the arm (treatment or holdout) is fixed as the
touch is written. A treated touch then points at the outbox row of its message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from care.automation.rules import Rule
from care.automation.triggers.base import Candidate
from care.core.config import CareConfig
from care.messaging.guardrails import in_holdout
from care.messaging.outbox import OutboxItem
from storage.enums import HoldoutArm
from storage.models import CareTouch, OutboxMessage
from storage.repos.upsert import insert_ignoring_conflicts

# (member id, occasion) → (touch id, arm) of the touches a pass won.
Claims = dict[tuple[int, str], tuple[int, str]]


def touch_key(rule: str, member_id: int, occasion: str) -> str:
    """The outbox idempotency key of a rule's message: (rule, member, occasion)."""
    return f"rule:{rule}:{member_id}:{occasion}"


async def claim(
    session: AsyncSession, rule: Rule, config: CareConfig, now: datetime, batch: list[Candidate]
) -> Claims:
    """Insert the touches; returns those this pass won (a touch already there is not)."""
    rows = [
        {
            "rule": rule.name,
            "member_id": c.member.id,
            "occasion": c.occasion,
            "arm": (
                HoldoutArm.HOLDOUT
                if rule.holdout and in_holdout(rule.name, c.member.id, config.holdout_pct)
                else HoldoutArm.TREATMENT
            ).value,
            "decided_at": now,
        }
        for c in batch
    ]
    if not rows:
        return {}
    won: Claims = {}
    statement = insert_ignoring_conflicts(session, CareTouch, ["rule", "member_id", "occasion"])
    if statement is not None:
        returning = statement.returning(
            CareTouch.id, CareTouch.member_id, CareTouch.occasion, CareTouch.arm
        )
        for touch_id, member_id, occasion, arm in await session.execute(returning, rows):
            won[(member_id, occasion)] = (touch_id, arm)
        return won
    for c, row in zip(batch, rows, strict=True):  # any other backend: a savepoint per touch
        try:
            async with session.begin_nested():
                inserted = await session.scalar(
                    insert(CareTouch).values(**row).returning(CareTouch.id)
                )
        except IntegrityError:
            continue
        assert inserted is not None
        won[(c.member.id, c.occasion)] = (inserted, str(row["arm"]))
    return won


async def link_outbox(
    session: AsyncSession,
    won: Claims,
    treated: Sequence[Candidate],
    items: Sequence[OutboxItem],
) -> dict[str, datetime]:
    """Point each touch at its outbox row; returns key → the time the message may go."""
    found = {
        key: (outbox_id, not_before)
        for key, outbox_id, not_before in await session.execute(
            select(
                OutboxMessage.idempotency_key, OutboxMessage.id, OutboxMessage.not_before
            ).where(OutboxMessage.idempotency_key.in_([item.key for item in items]))
        )
    }
    links = [
        {"id": won[(c.member.id, c.occasion)][0], "outbox_id": found[item.key][0]}
        for c, item in zip(treated, items, strict=True)
        if item.key in found
    ]
    if links:
        await session.execute(update(CareTouch), links)
    return {key: value[1] for key, value in found.items()}
