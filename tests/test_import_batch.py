"""The batched purchase import books exactly what the till's line-by-line booking would: the
same points at the tier held when paying, tier upgrades, stages, aggregates, ledger chain and
conversions, the same duplicates and refusals, whatever the batch size."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.imports.purchases import ImportReport, import_purchases, parse_time, render_report
from care.loyalty.purchases import record_purchase
from care.loyalty.till import TillInputError, parse_till_amount, till_member
from storage.models import CareTouch, Member, PointsEntry, Purchase
from tests.console_helpers import schema_session_factory
from tests.staff_helpers import OWNER_ID, make_member

CONFIG = CareConfig(owner_ids=frozenset({OWNER_ID}))
Factory = async_sessionmaker[AsyncSession]
PEOPLE = 5
ZONE = ZoneInfo(CONFIG.default_timezone)


@pytest.fixture
async def factory(any_db_url: str, clock: FrozenClock) -> AsyncIterator[Factory]:
    """Two identical groups of members: "A" phones for the import, "B" for the till."""
    async with schema_session_factory(any_db_url) as made:
        async with made() as session:
            for group in "AB":
                for number in range(PEOPLE):
                    member = await make_member(
                        session, CONFIG, clock, None, f"{group}{number}",
                        phone=f"+86138{'01' if group == 'A' else '02'}00000{number}",
                    )  # fmt: skip
                    if number == 3:  # classified before: a stage change now counts
                        member.segments_refreshed_at = clock.now() - timedelta(days=1)
            await session.flush()
            # A care touch each that a purchase of the file converts.
            for member in await session.scalars(select(Member).where(Member.name.like("_4"))):
                session.add(
                    CareTouch(
                        rule="winback",
                        member_id=member.id,
                        occasion="o",
                        arm="treatment",
                        decided_at=clock.now() - timedelta(days=120),
                    )
                )
            await session.commit()
        yield made


def lines(group: str, clock: FrozenClock) -> list[tuple[str, str, str, str]]:
    """Receipts of every size (tier upgrades half-way), old and recent, one repeated in the file,
    and lines that are refused."""
    phone = f"+86138{'01' if group == 'A' else '02'}00000"
    rows = []
    for number in range(PEOPLE):
        for visit in range(6):
            when = clock.now() - timedelta(days=400 - 70 * visit - number)
            amount = f"{(visit + 1) * 137 * (number + 1)}.50"
            rows.append((f"{group}{number}-{visit}", f"{phone}{number}", amount, when.isoformat()))
    rows.insert(7, rows[3])  # the same receipt twice in one file
    rows.append((f"{group}x", "+8613899999999", "10.00", clock.now().isoformat()))  # no member
    rows.append((f"{group}y", f"{phone}1", "99999999999.00", clock.now().isoformat()))
    return rows


async def state(factory: Factory, group: str) -> list[tuple[object, ...]]:
    async with factory() as session:
        members = list(
            await session.scalars(
                select(Member).where(Member.name.like(f"{group}%")).order_by(Member.name)
            )
        )
        result: list[tuple[object, ...]] = []
        for m in members:
            ledger = list(
                await session.execute(
                    select(PointsEntry.delta, PointsEntry.balance_after, PointsEntry.reason)
                    .where(PointsEntry.member_id == m.id)
                    .order_by(PointsEntry.id)
                )
            )
            earned = list(
                await session.scalars(
                    select(Purchase.points_earned)
                    .where(Purchase.member_id == m.id)
                    .order_by(Purchase.id)
                )
            )
            converted = await session.scalar(
                select(CareTouch.converted_at).where(CareTouch.member_id == m.id)
            )
            result.append(
                (
                    m.points_balance, m.tier_code, m.tier_changed_at, m.lifecycle_stage,
                    m.stage_changed_at, m.purchase_count, m.total_spent_minor,
                    m.spend_12m_minor, m.first_purchase_at, m.last_purchase_at,
                    m.avg_gap_days, [tuple(row) for row in ledger], earned, converted,
                )
            )  # fmt: skip
        return result


@pytest.mark.parametrize("batch_size", [1_000, 7])
async def test_a_batched_import_books_what_the_till_would_line_by_line(
    factory: Factory, clock: FrozenClock, batch_size: int
) -> None:
    text = "receipt_id,member,amount,purchased_at\n" + "".join(
        ",".join(row) + "\n" for row in lines("A", clock)
    )
    report = await import_purchases(
        factory, CONFIG, clock, io.StringIO(text), batch_size=batch_size
    )
    assert (report.imported, report.duplicates) == (PEOPLE * 6, 1)
    assert [(r.line, r.reason) for r in report.rejected] == [
        (33, "no member with the code or phone '+8613899999999'"),
        (34, "amount '99999999999.00' is larger than any single purchase can be"),
    ]

    # The same lines booked one by one, as the import did before it was batched.
    imported, duplicates = 0, 0
    async with factory() as session:
        for receipt, who, amount, when in lines("B", clock):
            try:
                member = await till_member(session, who)
                amount_minor = parse_till_amount(amount, CONFIG)
            except TillInputError:
                continue
            first = member.stage_changed_at is None and member.segments_refreshed_at is None
            result = await record_purchase(
                session, CONFIG, clock, member_id=member.id, amount_minor=amount_minor,
                receipt_id=receipt, purchased_at=parse_time(when, ZONE), source="import",
            )  # fmt: skip
            if first:
                member.stage_changed_at = None
            imported += not result.duplicate
            duplicates += result.duplicate
        await session.commit()
    assert (imported, duplicates) == (PEOPLE * 6, 1)

    batched, one_by_one = await state(factory, "A"), await state(factory, "B")
    assert batched == one_by_one
    assert len({row[1] for row in batched}) >= 2  # tiers were reached on the way
    assert batched[4][-1] is not None  # the touch was converted

    # Idempotent: the same file again books nothing and refuses the same lines.
    again = await import_purchases(
        factory, CONFIG, clock, io.StringIO(text), batch_size=batch_size
    )
    assert (again.imported, again.duplicates, len(again.rejected)) == (0, PEOPLE * 6 + 1, 2)
    assert await state(factory, "A") == batched


def test_the_report_speaks_plain_english_plurals() -> None:
    one = ImportReport(lines=1, imported=1)
    assert render_report(one) == "1 line read: 1 new purchase, 0 already recorded, 0 rejected."
    many = ImportReport(lines=6919, imported=6918, duplicates=1)
    assert render_report(many, "member") == (
        "6,919 lines read: 6918 new members, 1 already recorded, 0 rejected."
    )
    assert "(s)" not in render_report(ImportReport(lines=0), "member")
