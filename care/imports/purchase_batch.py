"""Booking one batch of checked purchase lines set-based: the members found with a few queries,
the new receipts inserted in one statement per thousand, the points ledger in one, the members'
rows updated once each — instead of a dozen statements per line.

The outcome is the line-by-line booking's (``care.loyalty.purchases.record_purchase``), line for
line in file order: the same aggregates, tier upgrades, stages, points at the tier held when
paying, ledger chain and touch conversions (``book_into_member`` is the one truth for both), the
same duplicates (a receipt recorded before, earlier in the file, or by a till at this moment) and
the same reasons for a refused line. An imported history sends no receipts (never did).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.config import CareConfig
from care.imports.csvfile import ImportReport
from care.loyalty.purchases import (
    MAX_AMOUNT_MINOR,
    MIN_AMOUNT_MINOR,
    book_into_member,
    stored_receipt,
)
from care.members.lookup import find_many_by_code_or_phone
from storage.enums import MemberStatus, PointsReason
from storage.models import CareTouch, Member, PointsEntry, Purchase
from storage.repos.loyalty import TierRepo
from storage.repos.purchases import PurchaseRepo
from storage.repos.upsert import insert_ignoring_conflicts

SOURCE = "import"
# Rows per INSERT: well below the bound-parameter limits of SQLite and PostgreSQL.
INSERT_CHUNK = 1_000
IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class CheckedLine:
    """A line whose own values are usable; its member is still to be found."""

    line: int
    receipt_id: str
    amount_minor: int
    category: str | None
    purchased_at: datetime
    member_text: str


async def book_lines(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    lines: Sequence[CheckedLine],
    report: ImportReport,
) -> None:
    """Book ``lines`` (in file order) in the session's transaction; fills in ``report``."""
    now = clock.now()
    found = await find_many_by_code_or_phone(session, [line.member_text for line in lines])
    usable: list[tuple[CheckedLine, Member, str]] = []
    for line in lines:
        members = found.get(line.member_text, [])
        if not members:
            report.reject(line.line, f"no member with the code or phone {line.member_text!r}")
        elif len(members) > 1:
            report.reject(line.line, f"{line.member_text!r} matches several members; use the "
                          "member code")  # fmt: skip
        elif not MIN_AMOUNT_MINOR <= line.amount_minor <= MAX_AMOUNT_MINOR:
            report.reject(line.line, "amount out of range")
        elif members[0].deleted_at is not None or members[0].status == MemberStatus.DELETED:
            report.reject(line.line, "the member deleted their data")
        else:
            receipt = stored_receipt(line.receipt_id) or line.receipt_id
            usable.append((line, members[0], receipt))
    if not usable:
        return

    known = await _recorded(session, [receipt for _, _, receipt in usable])
    new: list[tuple[CheckedLine, Member, str]] = []
    for line, member, receipt in usable:
        if receipt in known:
            report.duplicates += 1
        else:
            known.add(receipt)
            new.append((line, member, receipt))
    if not new:
        return
    # The insert comes first: it takes SQLite's write lock, and a receipt a till records at this
    # very moment is skipped (ON CONFLICT DO NOTHING) and counted as known, as one by one.
    ids = await _insert_purchases(session, config, now, new)
    report.duplicates += len(new) - len(ids)
    new = [entry for entry in new if entry[2] in ids]
    if not new:
        return

    member_ids = sorted({member.id for _, member, _ in new})
    locked = await _lock_members(session, member_ids)
    tiers = await TierRepo(session).all()
    points_by_purchase: list[dict[str, int]] = []
    entries: list[dict[str, object]] = []
    for line, member_row, receipt in new:
        member = locked[member_row.id]
        # History is not news: a member whose stage was never decided before keeps the stage
        # these purchases give them unstamped, so no stage rule fires for a whole import.
        first_classification = (
            member.stage_changed_at is None and member.segments_refreshed_at is None
        )
        booked = book_into_member(member, tiers, config, line.amount_minor, line.purchased_at, now)
        if first_classification:
            member.stage_changed_at = None
        purchase_id = ids[receipt]
        if booked.points > 0:
            member.points_balance = (member.points_balance or 0) + booked.points
            points_by_purchase.append({"id": purchase_id, "points_earned": booked.points})
            entries.append(
                {
                    "member_id": member.id, "delta": booked.points,
                    "balance_after": member.points_balance, "reason": str(PointsReason.PURCHASE),
                    "purchase_id": purchase_id, "note": None, "created_at": now,
                }
            )  # fmt: skip
        report.imported += 1
    if points_by_purchase:
        await session.execute(update(Purchase), points_by_purchase)
    if entries:
        await session.execute(PointsEntry.__table__.insert(), entries)
    await session.flush()
    await _convert_touches(session, config, new)


async def _recorded(session: AsyncSession, receipts: list[str]) -> set[str]:
    unique = sorted(set(receipts))
    known: set[str] = set()
    for start in range(0, len(unique), IN_CHUNK):
        part = unique[start : start + IN_CHUNK]
        known.update(
            await session.scalars(select(Purchase.receipt_id).where(Purchase.receipt_id.in_(part)))
        )
    return known


async def _insert_purchases(
    session: AsyncSession,
    config: CareConfig,
    now: datetime,
    new: list[tuple[CheckedLine, Member, str]],
) -> dict[str, int]:
    """Insert the new purchases (points follow once known); receipt id → purchase id for the
    rows actually inserted."""
    table = Purchase.__table__
    rows = [
        {
            "member_id": member.id, "receipt_id": receipt, "amount_minor": line.amount_minor,
            "currency": config.currency, "category": (line.category or "").strip()[:32] or None,
            "purchased_at": line.purchased_at, "points_earned": 0, "source": SOURCE,
            "recorded_by": None, "created_at": now,
        }
        for line, member, receipt in new
    ]  # fmt: skip
    statement = insert_ignoring_conflicts(session, table, ["receipt_id"])
    ids: dict[str, int] = {}
    if statement is None:  # another database: one row at a time, as the till does
        repo = PurchaseRepo(session)
        for row in rows:
            purchase_id = await repo.insert_new(row)
            if purchase_id is not None:
                ids[str(row["receipt_id"])] = purchase_id
        return ids
    # One statement compiled once (and cached): SQLAlchemy sends the rows as multi-row
    # INSERTs of its own ("insertmanyvalues"), returning what was actually inserted.
    returning = statement.returning(table.c.id, table.c.receipt_id)
    for start in range(0, len(rows), INSERT_CHUNK):
        result = await session.execute(returning, rows[start : start + INSERT_CHUNK])
        ids.update({receipt: int(purchase_id) for purchase_id, receipt in result})
    return ids


async def _lock_members(session: AsyncSession, member_ids: list[int]) -> dict[int, Member]:
    """The members, read again under a row lock (PostgreSQL; SQLite's write lock is held
    since the insert), so a till booking meanwhile is neither lost nor overwritten."""
    members: dict[int, Member] = {}
    for start in range(0, len(member_ids), IN_CHUNK):
        part = member_ids[start : start + IN_CHUNK]
        rows = await session.scalars(
            select(Member)
            .where(Member.id.in_(part))
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
        members.update({member.id: member for member in rows})
    return members


async def _convert_touches(
    session: AsyncSession, config: CareConfig, new: list[tuple[CheckedLine, Member, str]]
) -> None:
    """Care touches a purchase converts, as the till marks them: only members with an open
    touch need it (an imported history has few), line by line in file order."""
    member_ids = sorted({member.id for _, member, _ in new})
    open_touches: set[int] = set()
    for start in range(0, len(member_ids), IN_CHUNK):
        part = member_ids[start : start + IN_CHUNK]
        open_touches.update(
            await session.scalars(
                select(CareTouch.member_id)
                .where(CareTouch.member_id.in_(part), CareTouch.converted_at.is_(None))
                .distinct()
            )
        )
    if not open_touches:
        return
    repo = PurchaseRepo(session)
    window = timedelta(days=config.conversion_days)
    for line, member, _ in new:
        if member.id in open_touches:
            when = line.purchased_at
            await repo.mark_touches_converted(member.id, when, when - window)
